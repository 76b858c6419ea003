// The node-yarn example: one page on $PORT (8080 by default); its dependencies come from yarn.lock (Yarn 4, node-modules linker).
const http = require("http");
const ms = require("ms");
const debug = require("debug")("example");

const port = Number(process.env.PORT || 8080);
http
  .createServer((req, res) => {
    debug("%s %s", req.method, req.url);
    res.setHeader("Content-Type", "text/plain");
    res.end(`Hello from cnb! (node-yarn, a day is ${ms("1d")} ms)\n`);
  })
  .listen(port, () => console.log(`listening on ${port}`));
