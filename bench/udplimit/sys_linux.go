//go:build linux

package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// newSegmentCmsg returns a UDP_SEGMENT control message; setSegmentSize
// fills in its size.
func newSegmentCmsg() []byte {
	b := make([]byte, unix.CmsgSpace(2))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level = unix.IPPROTO_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	return b
}

func setSegmentSize(cmsg []byte, size int) {
	binary.NativeEndian.PutUint16(cmsg[unix.CmsgLen(0):], uint16(size))
}

// probeGSO sends two 8-byte segments in one UDP GSO write over loopback
// and checks that they arrive as two datagrams. It returns why not if the
// kernel (before 4.18) or the device cannot.
func probeGSO() error {
	rx, err := listenLoopback()
	if err != nil {
		return err
	}
	defer rx.Close()
	tx, err := listenLoopback()
	if err != nil {
		return err
	}
	defer tx.Close()
	cmsg := newSegmentCmsg()
	setSegmentSize(cmsg, 8)
	dst := rx.LocalAddr().(*net.UDPAddr).AddrPort()
	if _, _, err := tx.WriteMsgUDPAddrPort(make([]byte, 16), cmsg, dst); err != nil {
		if errors.Is(err, unix.EIO) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOPROTOOPT) {
			return fmt.Errorf("UDP GSO send refused: %w", err)
		}
		return fmt.Errorf("UDP GSO probe: %w", err)
	}
	if err := rx.SetReadDeadline(time.Now().Add(time.Second)); err != nil {
		return err
	}
	buf := make([]byte, 64)
	for range 2 {
		n, err := rx.Read(buf)
		if err != nil {
			return fmt.Errorf("UDP GSO probe: %w", err)
		}
		if n != 8 {
			return fmt.Errorf("UDP GSO probe: got a %d-byte datagram, want two of 8: no segmentation", n)
		}
	}
	return nil
}

// cpuSeconds returns this process's user plus system CPU time, all
// threads. Linux derives it from the scheduler's nanosecond runtime, so it
// is finer than /proc/PID/stat's clock ticks.
func cpuSeconds() (float64, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds(), nil
}
