package ibb_test

import (
	"bytes"
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/ibb"
	"github.com/xtlsjingle/xtlsjingle/internal/xmpptest"
)

// shapedLink is a client link whose server reads data IQs as a rate limit does (ejabberd's
// shaper without burst): a request that finds the server idle is read at once, and each read
// makes the server pause for its cost at rate before the next.
type shapedLink struct {
	ibb.Link
	rate float64 // wire bytes/s

	mu     sync.Mutex
	free   time.Time // the server reads again from here
	blocks map[string][]int
}

func (s *shapedLink) Request(ctx context.Context, to, typ string, payload []byte) ([]byte, error) {
	d, err := ibb.ParseData(payload)
	if err != nil {
		return s.Link.Request(ctx, to, typ, payload)
	}
	wire := len(payload) + 150 // the IQ around <data/>, roughly
	s.mu.Lock()
	at := time.Now()
	if s.free.After(at) {
		at = s.free
	}
	s.free = at.Add(time.Duration(float64(wire) / s.rate * float64(time.Second)))
	if s.blocks == nil {
		s.blocks = map[string][]int{}
	}
	s.blocks[d.SID] = append(s.blocks[d.SID], len(payload))
	s.mu.Unlock()
	_ = ctx.Done() // written: the Conn may send its next block (ibb.Link)
	t := time.NewTimer(time.Until(at))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.Link.Request(ctx, to, typ, payload)
}

// IBB-10 (issue 11): under a server that reads 40 kB/s from the client, the link's streams
// share one measurement and one pace. A bulk stream written in 3500-byte writes (TLS
// records, say) is cut into full blocks of the paced size, the short rest of each write
// joining the next one instead of leaving as a block of its own, and its last rest is sent
// by Close; a chat on a second stream of the same link arrives within a second while the
// bulk stream runs, and is not throttled by a limit measured from its own messages.
func TestIBB10_PacedStreamsShareLink(t *testing.T) {
	checkGoroutines(t)
	n := xmpptest.NewNetwork(11)
	romeo, juliet := n.Party(romeoJID), n.Party(julietJID)
	shaped := &shapedLink{Link: romeo, rate: 40000}
	w := &world{net: n, romeo: romeo, juliet: juliet,
		hRomeo: ibb.NewHandler(shaped, nil), hJulie: ibb.NewHandler(juliet, nil)}
	t.Cleanup(func() {
		w.hRomeo.Close()
		w.hJulie.Close()
		romeo.Close()
		juliet.Close()
	})
	bulkA, bulkB := w.pair(t, "bulk", 0)
	chatA, chatB := w.pair(t, "chat", 0)

	data := randomBytes(11, 240_000)
	const write = 3500
	var werr error
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		for off := 0; off < len(data); off += write {
			if _, werr = bulkA.Write(data[off:min(off+write, len(data))]); werr != nil {
				return
			}
		}
		werr = bulkA.Close()
	}()
	var got []byte
	var rerr error
	read := make(chan struct{})
	go func() {
		defer close(read)
		got, rerr = io.ReadAll(bulkB)
	}()

	time.Sleep(1500 * time.Millisecond) // the limit is measured
	var lat []time.Duration
	buf := make([]byte, 64)
	for i := range 12 {
		msg := []byte("chat message " + string(rune('a'+i)) + " while the transfer runs")
		start := time.Now()
		if _, err := chatA.Write(msg); err != nil {
			t.Fatalf("chat write: %v", err)
		}
		if err := chatB.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		k, err := io.ReadFull(chatB, buf[:len(msg)])
		if err != nil || !bytes.Equal(buf[:k], msg) {
			t.Fatalf("chat %d: %q, %v", i, buf[:k], err)
		}
		lat = append(lat, time.Since(start))
		time.Sleep(150 * time.Millisecond)
	}
	<-wrote
	<-read
	if werr != nil || rerr != nil {
		t.Fatalf("bulk: write %v, read %v", werr, rerr)
	}
	sameBytes(t, data, got)
	for i, d := range lat {
		if d >= time.Second {
			t.Errorf("chat %d took %v behind the transfer, want < 1 s", i, d)
		}
	}

	shaped.mu.Lock()
	sizes := shaped.blocks["bulk"]
	chats := len(shaped.blocks["chat"])
	shaped.mu.Unlock()
	// Paced blocks at 40 kB/s are capped at 3072 wire bytes, ~2150 payload bytes: a <data/>
	// element of ~2930 bytes. Cut per write they would be 1750 bytes, 2400 on the wire.
	late := sizes[len(sizes)/2 : len(sizes)-1]
	sum := 0
	for _, s := range late {
		sum += s
	}
	mean := sum / len(late)
	t.Logf("%d bulk data IQs, the later ones %d B of <data/> on average; %d chat IQs; chat latency %v", len(sizes), mean, chats, lat)
	if mean < 2700 {
		t.Errorf("paced blocks average %d B of <data/>, want ≥ 2700 (full blocks across writes)", mean)
	}
	if chats != len(lat) {
		t.Errorf("%d chat data IQs for %d messages, want one each", chats, len(lat))
	}
}
