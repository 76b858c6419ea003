// The go-vendored example: one page on $PORT (8080 by default), with a module vendored under vendor/.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"

	"example.com/cnb/greeting"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, greeting.Hello("go-vendored"))
	})
	log.Printf("listening on %s", port)
	log.Fatal(http.ListenAndServe(":"+port, nil))
}
