// Package docs holds aagtm's operator documentation (Markdown). It has no
// code: its tests keep the documents in step with the code, checking that
// config.md covers every configuration key and default, and that the
// docker-compose setup and its config are consistent and load.
package docs
