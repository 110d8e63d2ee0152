//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package p2p

import (
	"errors"
	"syscall"
)

// reuseControl: sharing a port needs SO_REUSEPORT, which this platform lacks here.
func reuseControl(network, address string, c syscall.RawConn) error {
	return errors.ErrUnsupported
}
