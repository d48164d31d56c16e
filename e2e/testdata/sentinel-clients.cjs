// Drives the Node.js Sentinel clients against aagtm's Sentinel endpoints
// (TestSentinelClients runs it): ioredis with failoverDetector and
// node-redis createSentinel each discover the master of "cache" and write
// one key through it; the test then looks for the keys on the member.
// Usage: NODE_MODULES=<dir>/node_modules node sentinel-clients.cjs host:port...
'use strict';
const path = require('path');
const mods = process.env.NODE_MODULES;
const Redis = require(path.join(mods, 'ioredis'));
const { createSentinel } = require(path.join(mods, 'redis'));

const sentinels = process.argv.slice(2).map((a) => {
  const i = a.lastIndexOf(':');
  return { host: a.slice(0, i), port: Number(a.slice(i + 1)) };
});

async function ioredis() {
  const r = new Redis({ sentinels, name: 'cache', failoverDetector: true, maxRetriesPerRequest: 2, lazyConnect: true });
  r.on('error', () => {});
  await r.connect();
  await r.set('aagtm:e2e:ioredis', 'ok');
  const who = await r.client('INFO');
  r.disconnect();
  return who;
}

async function nodeRedis() {
  const s = createSentinel({ name: 'cache', sentinelRootNodes: sentinels });
  s.on('error', () => {});
  await s.connect();
  await s.set('aagtm:e2e:node-redis', 'ok');
  await s.close();
  return 'ok';
}

(async () => {
  const out = {};
  for (const [name, f] of [['ioredis', ioredis], ['node-redis', nodeRedis]]) {
    try {
      out[name] = await f();
    } catch (e) {
      out[name] = 'error: ' + (e && e.stack ? e.stack : e);
    }
  }
  console.log(JSON.stringify(out));
  process.exit(0);
})();
