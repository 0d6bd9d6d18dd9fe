# The server as plain `node` on the bundle from `npm run build`: no npm and no tsx between a
# signal and the server, so SIGTERM from the runtime starts the graceful shutdown.
# The Node version is package.json's devDependency "node", the one the tests run on.

FROM node:24.21.0-bookworm-slim AS build
WORKDIR /app
# patches/ before npm ci: its postinstall (patch-package) applies them to node_modules.
COPY package.json package-lock.json ./
COPY patches ./patches
RUN npm ci
COPY . .
RUN npm run build && npm run build:web

# Production packages alone, in a stage of their own so npm's cache stays behind.
FROM node:24.21.0-bookworm-slim AS production-packages
WORKDIR /app
COPY package.json package-lock.json ./
COPY patches ./patches
RUN npm ci --omit=dev

FROM node:24.21.0-bookworm-slim
WORKDIR /app
# The repository's layout, which the bundle finds its files by: package.json ("type": "module"),
# data/people.json and out/web/ beside dist/. Owned by root, so the server cannot change them.
COPY package.json ./
COPY --from=production-packages /app/node_modules ./node_modules
COPY data ./data
COPY --from=build /app/dist/server ./dist/server
COPY --from=build /app/out/web ./out/web
# The image's "node" user by number, so Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
EXPOSE 50051
ENTRYPOINT ["node", "--max-semi-space-size=16", "--heap-growing-percent=100", "--no-allocation-site-pretenuring", "dist/server/main.js"]
