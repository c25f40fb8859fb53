# mirror-synth controller image, for users with a Docker engine.
#   docker build -t mirror-synth:dev .
#   docker run --rm mirror-synth:dev            # runs `mirror-synth controller` (needs a cluster)
#   docker run --rm mirror-synth:dev synth --help
# Without Docker, `npm run build:image` (scripts/build-image.sh, umoci) builds the same layout
# from this machine's Node 20 as an OCI archive; it is the one the tests build and run. This
# file is not built by the tests (no Docker engine there): test/construct/controller-image.test.ts
# keeps its USER, WORKDIR, ENTRYPOINT, CMD and EXPOSE equal to the script's.

# --- build: compile TypeScript to lib/ (no declarations or source maps, as the script) --------
FROM node:20-alpine AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
COPY src ./src
COPY assets ./assets
RUN npm ci --ignore-scripts && node_modules/.bin/tsc -p tsconfig.json --declaration false --declarationMap false --sourceMap false

# --- runtime: node in /usr/local/bin, the app in /app owned by root, run as 10001 -------------
FROM node:20-alpine
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force \
  && rm -f package-lock.json node_modules/.package-lock.json
COPY --from=build /src/lib ./lib
COPY bin ./bin
COPY assets ./assets
# A numeric non-root user, so Pod Security "restricted" (runAsNonRoot) can verify it; it owns no
# file, so the app cannot change itself, and it writes nothing (readOnlyRootFilesystem).
USER 10001:10001
EXPOSE 8080/tcp
ENTRYPOINT ["node", "/app/bin/mirror-synth.js"]
CMD ["controller"]
