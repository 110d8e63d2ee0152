package filetransfer_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"time"

	"github.com/xtlsjingle/xtlsjingle/filetransfer"
	"github.com/xtlsjingle/xtlsjingle/ibb"
	"github.com/xtlsjingle/xtlsjingle/internal/xmpptest"
	"github.com/xtlsjingle/xtlsjingle/jingle"
)

// Romeo offers a file to Juliet over IBB; Juliet checks the offer, accepts and receives it.
// Real clients wrap the bytestream in XTLS; this example allows plaintext for brevity.
func Example() {
	n := xmpptest.NewNetwork(1)
	romeo, juliet := n.Party("romeo@montague.lit/orchard"), n.Party("juliet@capulet.lit/balcony")
	defer romeo.Close()
	defer juliet.Close()
	hr, hj := ibb.NewHandler(romeo, nil), ibb.NewHandler(juliet, nil)
	defer hr.Close()
	defer hj.Close()
	incoming := make(chan *jingle.Session, 1)
	mr := jingle.NewManager(romeo, jingle.Config{InfoNamespaces: []string{filetransfer.NS}})
	mj := jingle.NewManager(juliet, jingle.Config{InfoNamespaces: []string{filetransfer.NS},
		Incoming: func(s *jingle.Session) { incoming <- s }})
	defer mr.Close()
	defer mj.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dir, _ := os.MkdirTemp("", "ft-example")
	defer os.RemoveAll(dir)

	data := []byte("Thus with a kiss I die.")
	sum := sha256.Sum256(data)
	file := filetransfer.File{Name: "letter.txt", Size: int64(len(data)),
		Hashes: []filetransfer.Hash{{Algo: "sha-256", Value: sum[:]}}}
	desc, _ := file.Description()
	tr, _ := ibb.NewJingleTransport(hr, juliet.LocalJID(), "ft1", 0)
	s, err := mr.Initiate(ctx, juliet.LocalJID(), []jingle.Content{{Creator: jingle.CreatorInitiator,
		Name: "f", Senders: jingle.SendersInitiator, Description: desc, Transport: tr.Element()}},
		map[string]jingle.Transport{"f": tr})
	if err != nil {
		fmt.Println(err)
		return
	}

	done := make(chan string)
	go func() { // Juliet
		sj := <-incoming
		c := sj.Contents()[0]
		offer, _ := filetransfer.ParseDescription(c.Description)
		opts := filetransfer.ReceiveOptions{Dir: dir, MaxSize: 1 << 20, AllowPlaintext: true}
		if _, err := filetransfer.CheckOffer(offer, opts); err != nil {
			sj.Terminate(ctx, &jingle.Reason{Condition: filetransfer.ReasonFor(err)})
			done <- err.Error()
			return
		}
		res, _ := ibb.NewJingleResponder(hj, romeo.LocalJID(), c.Transport)
		sj.Accept(ctx, []jingle.Content{{Creator: c.Creator, Name: c.Name, Senders: c.Senders,
			Description: c.Description, Transport: res.Element()}}, map[string]jingle.Transport{"f": res})
		conn, err := sj.Establish(ctx, "f")
		if err != nil {
			done <- err.Error()
			return
		}
		r, err := filetransfer.Receive(ctx, sj, "f", conn, offer, opts)
		if err != nil {
			done <- err.Error()
			return
		}
		got, _ := os.ReadFile(r.Path)
		done <- fmt.Sprintf("%s verified with %s: %q", offer.Name, r.Verified, got)
	}()

	if ev := <-s.Events(); ev.Action != jingle.SessionAccept {
		fmt.Println("refused:", <-done)
		return
	}
	conn, err := s.Establish(ctx, "f")
	if err != nil {
		fmt.Println(err)
		return
	}
	err = filetransfer.Send(ctx, s, "f", conn, bytes.NewReader(data), &file, filetransfer.SendOptions{AllowPlaintext: true})
	fmt.Println("sent:", err)
	fmt.Println(<-done)
	// Output:
	// sent: <nil>
	// letter.txt verified with sha-256: "Thus with a kiss I die."
}
