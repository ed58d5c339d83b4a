package consumer

import (
	"container/list"
	"sync"
)

// replayWindow is how many recently opened messages a consumer remembers
// to recognise a replay: the same signed message stored again.
const replayWindow = 100_000 // messages

// seenMessages remembers which stream copy each recently opened message
// arrived as. A redelivery of the same copy is normal (a handler failed or
// an ack was lost); a second copy of the same message under another
// sequence is a replay, by a sender resending a captured envelope beyond
// the broker's deduplication window. The memory is bounded and lives for
// the process only.
type seenMessages struct {
	mu    sync.Mutex
	order *list.List               // guarded by mu; oldest at the back
	bySeq map[string]*list.Element // guarded by mu; values are seenEntry
}

type seenEntry struct {
	key string
	seq uint64
}

func newSeenMessages() *seenMessages {
	return &seenMessages{order: list.New(), bySeq: make(map[string]*list.Element)}
}

// replayed reports whether message id on subject was already opened as a
// different stream sequence than seq, and otherwise remembers seq.
func (s *seenMessages) replayed(id, subject string, seq uint64) bool {
	key := subject + "\x00" + id
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.bySeq[key]; ok {
		return el.Value.(seenEntry).seq != seq
	}
	s.bySeq[key] = s.order.PushFront(seenEntry{key: key, seq: seq})
	for s.order.Len() > replayWindow {
		old := s.order.Remove(s.order.Back()).(seenEntry)
		delete(s.bySeq, old.key)
	}
	return false
}
