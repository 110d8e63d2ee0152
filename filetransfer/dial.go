package filetransfer

import (
	"context"
	"io"
	"net"

	"github.com/xtlsjingle/xtlsjingle/jingle"
)

// Dialer opens a Jingle session with peer whose one content is offer (the file's
// <description/>, senders initiator) and returns the active session, the name of that content
// and its bytestream, secured by the security layer: for XTLS a closure around
// xtls.Client.OpenConn, which returns the session, content and *tls.Conn of an
// XTLS-secured bytestream. Keeping the security layer behind this function keeps this
// package independent of it.
type Dialer func(ctx context.Context, peer string, offer jingle.Content) (s *jingle.Session, content string, conn net.Conn, err error)

// SendTo offers f to the full JID peer through dial and sends src with Send: the receiver's
// session-terminate <success/> (after it verified the hash) gives nil. A failure of dial is
// returned as it is (e.g. an *xtls.Error with <security-error/>); nothing was sent then.
func SendTo(ctx context.Context, dial Dialer, peer string, src io.Reader, f *File, opts SendOptions) error {
	desc, err := f.Description()
	if err != nil {
		return err
	}
	s, content, conn, err := dial(ctx, peer, jingle.Content{Name: "file", Senders: jingle.SendersInitiator, Description: desc})
	if err != nil {
		return err
	}
	return Send(ctx, s, content, conn, src, f, opts)
}
