// Package greeting is the vendored module of the go-vendored example.
package greeting

// Hello is the page's line.
func Hello(who string) string { return "Hello from cnb! (" + who + ", greeting v0.1.0)" }
