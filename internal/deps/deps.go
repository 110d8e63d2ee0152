//go:build tools

// Package deps pins the module's chosen dependencies before every package that uses them exists.
package deps

import (
	_ "github.com/Kong/go-srp"
	_ "github.com/google/go-cmp/cmp"
	_ "golang.org/x/net/nettest"
	_ "golang.org/x/term"
	_ "golang.org/x/text/secure/precis"
	_ "gosrc.io/xmpp"
)
