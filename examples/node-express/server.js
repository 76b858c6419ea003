// The node-express example: one page on $PORT (8080 by default).
"use strict";
const express = require("express");

const app = express();
const port = Number(process.env.PORT || 8080);

app.get("/", (req, res) => {
  res.type("html").send(`<h1>Hello from cnb! (node-express)</h1>\n<p>Node ${process.version}</p>\n`);
});

app.get("/healthz", (req, res) => res.type("text").send("ok\n"));

app.listen(port, "0.0.0.0", () => console.log(`node-express example listening on port ${port}`));
