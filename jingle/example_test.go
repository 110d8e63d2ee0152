package jingle_test

import (
	"context"
	"fmt"

	"github.com/xtlsjingle/xtlsjingle/internal/xmpptest"
	"github.com/xtlsjingle/xtlsjingle/jingle"
)

// A session between two managers over the in-memory network: Juliet accepts what Romeo offers,
// Romeo announces the XTLS method with security-info and ends the session.
func ExampleManager() {
	ctx := context.Background()
	network := xmpptest.NewNetwork(1)
	romeo := network.Party("romeo@montague.lit/orchard")
	juliet := network.Party("juliet@capulet.lit/balcony")
	defer romeo.Close()
	defer juliet.Close()

	done := make(chan struct{})
	mj := jingle.NewManager(juliet, jingle.Config{
		Incoming: func(s *jingle.Session) {
			defer close(done)
			// A real application asks its user first (J-9) and binds its Transport.
			if err := s.Accept(ctx, s.Contents(), nil); err != nil {
				fmt.Println("accept:", err)
				return
			}
			for ev := range s.Events() { // closed when the session ends
				switch ev.Action {
				case jingle.SecurityInfo:
					fmt.Printf("juliet: %s %s\n", ev.Action, ev.Contents[0].Security)
				case jingle.SessionTerminate:
					fmt.Printf("juliet: %s <%s/>\n", ev.Action, ev.Reason.Condition)
				}
			}
		},
	})
	defer mj.Close()
	mr := jingle.NewManager(romeo, jingle.Config{})
	defer mr.Close()

	content := jingle.Content{
		Creator:     jingle.CreatorInitiator,
		Name:        "xmlstream",
		Description: []byte(`<description xmlns='urn:xmpp:jingle:apps:xmlstream:0'/>`),
		Transport:   []byte(`<transport xmlns='urn:xmpp:jingle:transports:ibb:1' block-size='4096' sid='ch3d9s71'/>`),
		Security:    []byte(`<security xmlns='urn:xmpp:jingle:security:xtls:0'><method name='srp'/></security>`),
	}
	s, err := mr.Initiate(ctx, "juliet@capulet.lit/balcony", []jingle.Content{content}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	ev := <-s.Events()
	fmt.Println("romeo:", ev.Action, s.State())

	choice := jingle.Content{Creator: jingle.CreatorInitiator, Name: "xmlstream",
		Security: []byte(`<security xmlns='urn:xmpp:jingle:security:xtls:0'><method name='srp'/></security>`)}
	if err := s.Send(ctx, jingle.SecurityInfo, []jingle.Content{choice}, nil); err != nil {
		fmt.Println(err)
	}
	if err := s.Terminate(ctx, &jingle.Reason{Condition: jingle.Success}); err != nil {
		fmt.Println(err)
	}
	<-done
	fmt.Println("romeo:", s.State())
	// Output:
	// romeo: session-accept active
	// juliet: security-info <security xmlns='urn:xmpp:jingle:security:xtls:0'><method name='srp'/></security>
	// juliet: session-terminate <success/>
	// romeo: ended
}
