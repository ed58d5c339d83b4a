package keys

import (
	"container/list"
	"sync"
	"time"
)

// Cache holds unwrapped data keys by ID so that a consumer does not ask
// the key service again for every message sealed under a reused key. It
// is bounded in size and age, and zeroes every key it evicts. It is safe
// for concurrent use; the zero value is not usable, use [NewCache].
type Cache struct {
	max int
	ttl time.Duration
	now func() time.Time

	mu    sync.Mutex
	order *list.List               // guarded by mu; front is most recently used
	byID  map[string]*list.Element // guarded by mu
}

type cacheEntry struct {
	dk      *DataKey
	version string // the wrapping key version the key was unwrapped with
	added   time.Time
}

// NewCache returns a cache of at most max keys, each kept at most ttl.
// A max below 1 disables caching.
func NewCache(max int, ttl time.Duration) *Cache {
	return &Cache{max: max, ttl: ttl, now: time.Now, order: list.New(), byID: make(map[string]*list.Element)}
}

// Get returns a copy of the key with the given ID and the wrapping key
// version it was stored with, or nil. The copy is the caller's: eviction
// does not zero it, so the caller destroys it after use.
func (c *Cache) Get(id string) (*DataKey, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byID[id]
	if !ok {
		return nil, ""
	}
	e := el.Value.(*cacheEntry)
	if c.now().Sub(e.added) >= c.ttl {
		c.removeLocked(el)
		return nil, ""
	}
	c.order.MoveToFront(el)
	return &DataKey{id: e.dk.id, key: append([]byte(nil), e.dk.key...)}, e.version
}

// Put stores a copy of dk, unwrapped with wrapping key version (such as
// "vault:v2"; "" if unknown), evicting the least recently used keys beyond
// the size bound. The caller keeps ownership of dk.
func (c *Cache) Put(dk *DataKey, version string) {
	if c.max < 1 {
		return
	}
	cp := &DataKey{id: dk.id, key: append([]byte(nil), dk.key...)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byID[dk.id]; ok {
		c.removeLocked(el)
	}
	c.byID[dk.id] = c.order.PushFront(&cacheEntry{dk: cp, version: version, added: c.now()})
	for c.order.Len() > c.max {
		c.removeLocked(c.order.Back())
	}
}

// Forget evicts and zeroes the key with the given ID, if cached.
func (c *Cache) Forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byID[id]; ok {
		c.removeLocked(el)
	}
}

// Len returns the number of cached keys.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

func (c *Cache) removeLocked(el *list.Element) {
	e := c.order.Remove(el).(*cacheEntry)
	delete(c.byID, e.dk.id)
	e.dk.Destroy()
}
