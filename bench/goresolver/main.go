// goresolver: a baseline for bench/resolve.py, not a product. It does the network part of what kbld does on the
// bench's YAML (every "image: REF" value to REF's digest with one manifest HEAD per distinct reference, on a pool
// of -parallel goroutines, plain HTTP) and rewrites the text; it does not parse YAML or write annotations, so it
// is a lower bound for a Go resolver's time. Go standard library only (builds with Debian 12's Go 1.19).
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
)

var imageRe = regexp.MustCompile(`image: '?([^'\s,}]+)`)

const accept = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, " +
	"application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json"

func head(client *http.Client, ref string) (string, error) {
	slash := strings.Index(ref, "/")
	host, rest := ref[:slash], ref[slash+1:]
	repo, tag := rest, "latest"
	if colon := strings.LastIndex(rest, ":"); colon > strings.LastIndex(rest, "/") {
		repo, tag = rest[:colon], rest[colon+1:]
	}
	req, err := http.NewRequest("HEAD", "http://"+host+"/v2/"+repo+"/manifests/"+tag, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", accept)
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("%s: %s", ref, resp.Status)
	}
	return host + "/" + repo + "@" + resp.Header.Get("Docker-Content-Digest"), nil
}

func main() {
	file := flag.String("f", "", "YAML file")
	parallel := flag.Int("parallel", 16, "requests at a time")
	flag.Parse()
	data, err := os.ReadFile(*file)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	text := string(data)
	unique := map[string]string{}
	var order []string
	for _, m := range imageRe.FindAllStringSubmatch(text, -1) {
		if _, ok := unique[m[1]]; !ok {
			unique[m[1]] = ""
			order = append(order, m[1])
		}
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *parallel}}
	jobs := make(chan string)
	var mu sync.Mutex
	var wg sync.WaitGroup
	var failed error
	for i := 0; i < *parallel; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ref := range jobs {
				pinned, err := head(client, ref)
				mu.Lock()
				if err != nil {
					failed = err
				}
				unique[ref] = pinned
				mu.Unlock()
			}
		}()
	}
	for _, ref := range order {
		jobs <- ref
	}
	close(jobs)
	wg.Wait()
	if failed != nil {
		fmt.Fprintln(os.Stderr, failed)
		os.Exit(1)
	}
	out := imageRe.ReplaceAllStringFunc(text, func(s string) string {
		m := imageRe.FindStringSubmatch(s)
		return strings.Replace(s, m[1], unique[m[1]], 1)
	})
	fmt.Print(out)
}
