package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Kinds of scenario; each has its own table.
const (
	kindFanout    = "fanout"
	kindMeeting   = "meeting"
	kindJoinStorm = "joinstorm"
	kindIdle      = "idle"
)

// scenario is one loadtest run against a fresh server.
type scenario struct {
	name         string
	kind         string
	participants int
	fanout       int      // subscribers per published packet, for the udplimit comparison
	args         []string // loadtest flags besides --url, --duration, --json, --quiet
	duration     time.Duration
	quick        time.Duration
}

// scenarios are the issue's: fan-out, meetings, a join storm and idle
// signaling, in that order.
func scenarios() []scenario {
	var list []scenario
	for _, n := range []int{25, 50, 100, 200} {
		list = append(list, scenario{
			name: fmt.Sprintf("fanout-%d", n), kind: kindFanout, participants: n + 1, fanout: n,
			args:     []string{"--publishers", "1", "--subscribers", strconv.Itoa(n)},
			duration: 20 * time.Second, quick: 6 * time.Second,
		})
	}
	list = append(list,
		scenario{
			name: "meeting-8x8", kind: kindMeeting, participants: 8,
			args:     []string{"--publishers", "8", "--subscribers", "0"},
			duration: 20 * time.Second, quick: 6 * time.Second,
		},
		// Simulcast (issue 10): three VP8 layers, 150 k + 500 k + 1.7 M, and
		// the subscribers' preferences spread over them (track_settings
		// quality low, medium, high in turn), so every layer is forwarded.
		scenario{
			name: "simulcast-fanout-100", kind: kindFanout, participants: 101, fanout: 100,
			args:     []string{"--publishers", "1", "--subscribers", "100", "--simulcast", "--quality-spread"},
			duration: 20 * time.Second, quick: 6 * time.Second,
		},
		scenario{
			name: "simulcast-meeting-8x8", kind: kindMeeting, participants: 8,
			args:     []string{"--publishers", "8", "--subscribers", "0", "--simulcast", "--quality-spread"},
			duration: 20 * time.Second, quick: 6 * time.Second,
		},
		scenario{
			name: "meeting-16x16-audio", kind: kindMeeting, participants: 16,
			args:     []string{"--publishers", "16", "--subscribers", "0", "--video=false"},
			duration: 20 * time.Second, quick: 6 * time.Second,
		},
		// The publisher joins first, 50 ms ahead of the first subscriber;
		// the 100 subscribers take 5 s to join.
		scenario{
			name: "joinstorm-100", kind: kindJoinStorm, participants: 101,
			args:     []string{"--publishers", "1", "--subscribers", "100", "--join-rate", "20"},
			duration: 20 * time.Second, quick: 8 * time.Second,
		},
		// 2,000 joins asked for at 200/s take about 30 s rather than 10:
		// every join is announced to everyone already in the room, so the
		// signaling work grows with the square of the room. The rest of
		// the run holds them.
		scenario{
			name: "idle-2000", kind: kindIdle, participants: 2000,
			args: []string{"--publishers", "0", "--subscribers", "2000", "--signaling-only",
				"--join-rate", "200", "--max-participants", "2500"},
			duration: 50 * time.Second, quick: 45 * time.Second,
		},
	)
	return list
}

// selectScenarios keeps the scenarios whose name is, or starts with, one
// of the comma-separated entries of only; an empty only keeps them all.
func selectScenarios(all []scenario, only string) ([]scenario, error) {
	if strings.TrimSpace(only) == "" {
		return all, nil
	}
	var picked []scenario
	seen := map[string]bool{}
	for _, want := range strings.Split(only, ",") {
		want = strings.TrimSpace(want)
		if want == "" {
			continue
		}
		matched := false
		for _, s := range all {
			if s.name == want || strings.HasPrefix(s.name, want) {
				matched = true
				if !seen[s.name] {
					seen[s.name] = true
					picked = append(picked, s)
				}
			}
		}
		if !matched {
			return nil, fmt.Errorf("--only: no scenario %q (have %s)", want, scenarioNames(all))
		}
	}
	return picked, nil
}

func scenarioNames(list []scenario) string {
	names := make([]string, len(list))
	for i, s := range list {
		names[i] = s.name
	}
	return strings.Join(names, ", ")
}

// runDuration is the loadtest --duration for s.
func (s scenario) runDuration(o options) time.Duration {
	switch {
	case o.duration > 0:
		return o.duration
	case o.quick:
		return s.quick
	default:
		return s.duration
	}
}
