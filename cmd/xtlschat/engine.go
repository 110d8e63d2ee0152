package main

import (
	"context"

	"github.com/xtlsjingle/xtlsjingle/jingle"
	"github.com/xtlsjingle/xtlsjingle/xtls"
)

// engine is what the commands need from the XTLS plugin once it runs: opening sessions and
// taking the incoming ones that were accepted. *xtls.Client implements it; the interface keeps
// the commands' dependency on the plugin this small.
type engine interface {
	Open(ctx context.Context, peer string, o *xtls.OpenOptions) (*xtls.Session, error)
	Accept(ctx context.Context) (*xtls.Session, error)
	// OpenConn secures a file transfer's bytestream (files.go).
	OpenConn(ctx context.Context, peer string, content jingle.Content, o *xtls.OpenOptions) (*xtls.Conn, error)
	// OpenPlaintext opens an unencrypted transfer with a peer without XTLS, only after the
	// user allowed it for that transfer (files.go).
	OpenPlaintext(ctx context.Context, peer string, content jingle.Content, o *xtls.OpenOptions) (*xtls.PlaintextConn, error)
}

var _ engine = (*xtls.Client)(nil)
