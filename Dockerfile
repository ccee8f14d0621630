FROM node:24-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY src ./src
COPY migrations ./migrations
COPY views ./views
# V8 heap sizing, as `npm start` sets it (docs/operations.md, "Memory"); override with -e NODE_OPTIONS=...
ENV NODE_ENV=production PORT=3000 NODE_OPTIONS="--max-semi-space-size=4 --max-old-space-size=256"
USER node
EXPOSE 3000
CMD ["node", "src/main.ts", "start"]
