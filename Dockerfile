# syntax=docker/dockerfile:1
# The exporter's image (also runs the demo's simulator and setup step in
# docker-compose.yml). Node 20 pinned by version and digest.

FROM node:20.19.5-bookworm-slim@sha256:9e70124bd00f47dd023e349cd587132ae61892acc0e47ed641416c3e18f401c3 AS deps
WORKDIR /app
# `npm ci` runs the project's postinstall (`prisma generate`), which needs the
# schema, prisma.config.ts and the engine placeholder in scripts/; `npm run
# build` compiles the exporter to dist/ (plain node uses far less memory than
# a TypeScript loader), then the dev dependencies go.
COPY package.json package-lock.json prisma.config.ts tsconfig.json tsconfig.build.json ./
COPY prisma ./prisma
COPY scripts ./scripts
COPY src ./src
RUN npm ci --no-audit --no-fund \
 && npm run build \
 && npm prune --omit=dev --no-audit --no-fund \
 && npm cache clean --force

FROM node:20.19.5-bookworm-slim@sha256:9e70124bd00f47dd023e349cd587132ae61892acc0e47ed641416c3e18f401c3
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=deps /app/src/generated ./src/generated
COPY --from=deps /app/dist ./dist
COPY package.json package-lock.json tsconfig.json prisma.config.ts ./
COPY prisma ./prisma
COPY scripts ./scripts
COPY sql ./sql
COPY src ./src
# The image's own user (uid 1000), never root; nothing under /app is writable by it.
USER node
EXPOSE 9471
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 9471) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "--max-semi-space-size=2", "--max-old-space-size=64", "dist/main.js"]
