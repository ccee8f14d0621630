FROM node:24-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY src ./src
COPY migrations ./migrations
COPY views ./views
ENV NODE_ENV=production PORT=3000
USER node
EXPOSE 3000
CMD ["node", "src/main.ts", "start"]
