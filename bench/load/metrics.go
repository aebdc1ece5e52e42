package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// Server metrics the benchmark reads; all are unlabelled.
const (
	mForwarded     = "quartet_forwarded_packets_total"
	mForwardedB    = "quartet_forwarded_bytes_total"
	mDropped       = "quartet_dropped_packets_total"
	mRetransmitted = "quartet_retransmitted_packets_total"
	mHeapInuse     = "go_memstats_heap_inuse_bytes"
	mStackInuse    = "go_memstats_stack_inuse_bytes"
	mGoroutines    = "go_goroutines"
)

var wantedMetrics = []string{mForwarded, mForwardedB, mDropped, mRetransmitted, mHeapInuse, mStackInuse, mGoroutines}

// scrape fetches url (a Prometheus text endpoint) and returns the wanted
// unlabelled samples.
func scrape(ctx context.Context, client *http.Client, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	res, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, res.Status)
	}
	return parseMetrics(res.Body, wantedMetrics)
}

// parseMetrics reads the Prometheus text format and returns the value of
// each sample in names that has no labels. Labelled samples, comments and
// names not asked for are skipped.
func parseMetrics(r io.Reader, names []string) (map[string]float64, error) {
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		// "name value [timestamp]"; a '{' in the name means labels.
		f := strings.Fields(line)
		if len(f) < 2 || !want[f[0]] {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			return nil, fmt.Errorf("metric %s: %w", f[0], err)
		}
		out[f[0]] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	return out, nil
}
