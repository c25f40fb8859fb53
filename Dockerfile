# mirror-synth controller image, for users with a Docker engine.
#   docker build -t mirror-synth:dev .
#   docker run --rm mirror-synth:dev            # runs `mirror-synth controller` (needs a cluster)
#   docker run --rm mirror-synth:dev synth --help
# Without Docker, `npm run build:image` (scripts/build-image.sh, umoci) builds the same layout
# as an OCI archive; it is the one the tests build and run. This file is not built by the tests
# (no Docker engine there): test/construct/controller-image.test.ts keeps its base image's Node
# release, USER, WORKDIR, ENTRYPOINT, CMD and EXPOSE equal to the script's.
#
# The base image: the Node release the script pins (its NODE_VERSION), by tag. It is not pinned
# by digest here: this file is written and tested on machines that reach no container registry,
# and a digest that was not looked up would be a guess. Nothing publishes this image yet (README
# "The controller image"); whoever builds one to run pins the base by digest with the build arg:
#   docker buildx imagetools inspect node:24.22.3-alpine     # the index digest, sha256:...
#   docker build --build-arg NODE_IMAGE=node:24.22.3-alpine@sha256:<that digest> -t <your registry>/mirror-synth:0.1.0 .
ARG NODE_IMAGE=node:24.22.3-alpine

# --- build: compile TypeScript to lib/ (no declarations or source maps, as the script) --------
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
COPY src ./src
COPY assets ./assets
RUN npm ci --ignore-scripts && node_modules/.bin/tsc -p tsconfig.json --declaration false --declarationMap false --sourceMap false

# --- runtime: node in /usr/local/bin, the app in /app owned by root, run as 10001 -------------
FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies without optional ones: cdk8s-plus-27's optional `backport` CLI (with
# @octokit/rest and axios) is never loaded by the controller or the fill. Then the base image's
# package managers go (npm, npx, corepack, yarn): nothing in the image runs them.
RUN npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund && npm cache clean --force \
  && rm -f package-lock.json node_modules/.package-lock.json \
  && rm -rf /usr/local/lib/node_modules /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
    /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-*
COPY --from=build /src/lib ./lib
COPY bin ./bin
COPY assets ./assets
# A numeric non-root user, so Pod Security "restricted" (runAsNonRoot) can verify it; it owns no
# file, so the app cannot change itself, and it writes nothing (readOnlyRootFilesystem).
USER 10001:10001
EXPOSE 8080/tcp
ENTRYPOINT ["node", "/app/bin/mirror-synth.js"]
CMD ["controller"]
