// Package web holds the browser side of Quartet: the JS SDK (sdk/), the web
// app built on it (app/) and its two HTML pages.
package web

import "embed"

// FS is the embedded browser app: index.html (home page), room.html (served
// for /r/{room}), app/ (served at /app/) and sdk/ (served at /sdk/).
//
//go:embed index.html room.html app sdk
var FS embed.FS
