# mirror-synth controller image.
#   docker build -t mirror-synth:dev .
#   docker run --rm mirror-synth:dev            # runs `mirror-synth controller` (needs a cluster)
#   docker run --rm mirror-synth:dev synth --help

# --- build: compile TypeScript to lib/ -------------------------------------------------
FROM node:20-alpine AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
COPY src ./src
COPY assets ./assets
# `prepare` compiles on install; the explicit build keeps this working if that script changes.
RUN npm ci && npm run build

# --- runtime: production dependencies, compiled code, non-root ----------------------------
FROM node:20-alpine
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /src/lib ./lib
COPY bin ./bin
COPY assets ./assets
# A numeric non-root user, so Pod Security "restricted" (runAsNonRoot) can verify it.
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["node", "bin/mirror-synth.js"]
CMD ["controller"]
