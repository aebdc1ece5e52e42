//go:build !linux

package main

import "errors"

// UDP GSO and the CPU clock used here are Linux's; elsewhere the batch and
// GSO paths still build (x/net falls back to one datagram per call) but
// nothing can be measured.

func newSegmentCmsg() []byte { return nil }

func setSegmentSize([]byte, int) {}

func probeGSO() error { return errors.New("UDP GSO needs Linux") }

func cpuSeconds() (float64, error) { return 0, errors.New("CPU time is read on Linux only") }
