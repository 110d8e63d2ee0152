package main

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestSubscribePresenceTable (issue 10, SEED-1): --subscribe waits for a contact's presence;
// an unavailable presence resets the wait, and the table of full JIDs stays bounded.
func TestSubscribePresenceTable(t *testing.T) {
	c := &conn{online: map[string]chan struct{}{}}
	ctx := context.Background()
	c.notePresence("bob@example.org/a", "available")
	start := time.Now()
	c.waitPresence(ctx, "bob@example.org/a", 5*time.Second)
	if time.Since(start) > 2*time.Second {
		t.Fatal("waitPresence waited although bob's presence came")
	}
	c.notePresence("bob@example.org/a", "unavailable")
	c.mu.Lock()
	_, kept := c.online["bob@example.org/a"]
	c.mu.Unlock()
	if kept {
		t.Fatal("bob went unavailable but a later waitPresence would return at once")
	}
	for i := range 2 * maxOnline {
		c.notePresence(fmt.Sprintf("bob@example.org/r%d", i), "available")
	}
	c.mu.Lock()
	n := len(c.online)
	c.mu.Unlock()
	if n > maxOnline {
		t.Fatalf("%d entries, want at most %d", n, maxOnline)
	}
}
