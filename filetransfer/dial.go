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

// Answer decides on an offered <description/> for the receiver with CheckOffer and returns
// the offer and the <description/> to put in session-accept: the offered one, or with
// <range offset/> when a partial earlier download of the same name resumes (XEP-0234 §5).
// An error (ErrBadName, ErrTooLarge, ErrExists, a malformed offer) means refuse the session
// with ReasonFor(err).
func Answer(desc []byte, opts ReceiveOptions) (offer *File, accept []byte, err error) {
	offer, err = ParseDescription(desc)
	if err != nil {
		return nil, nil, err
	}
	resume, err := CheckOffer(offer, opts)
	if err != nil {
		return offer, nil, err
	}
	if resume == 0 {
		return offer, desc, nil
	}
	a := *offer
	a.Range = &Range{Offset: resume}
	accept, err = a.Description()
	return offer, accept, err
}

// Offered returns the file of the content named content of s (for Receive once the
// session is active).
func Offered(s *jingle.Session, content string) (*File, error) {
	for _, c := range s.Contents() {
		if c.Name == content {
			return ParseDescription(c.Description)
		}
	}
	return nil, &Error{Condition: "bad-request", Text: "no content " + content}
}
