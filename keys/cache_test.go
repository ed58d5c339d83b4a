package keys

import (
	"bytes"
	"testing"
	"time"
)

func TestCacheEvictsLeastRecentlyUsedAndZeroes(t *testing.T) {
	c := NewCache(2, time.Hour)
	a, b, d := NewDataKey(), NewDataKey(), NewDataKey()
	c.Put(a, "")
	c.Put(b, "")
	held, _ := c.Get(a.ID()) // a becomes most recently used
	c.Put(d, "")             // evicts b

	if got, _ := c.Get(b.ID()); got != nil {
		t.Errorf("Get(b) after eviction = %v, want nil", got)
	}
	if got, _ := c.Get(a.ID()); got == nil || !bytes.Equal(got.Bytes(), a.Bytes()) {
		t.Errorf("Get(a) = %v, want a copy of a", got)
	}
	inner := c.byID[a.ID()].Value.(*cacheEntry).dk
	c.Forget(a.ID())
	if !bytes.Equal(inner.Bytes(), make([]byte, DataKeySize)) {
		t.Errorf("cached key bytes after Forget = %x, want zeroes", inner.Bytes())
	}
	if !bytes.Equal(held.Bytes(), a.Bytes()) {
		t.Errorf("copy returned by Get changed after Forget")
	}
	if c.Len() != 1 {
		t.Errorf("Len() = %d, want 1", c.Len())
	}
}

func TestCacheExpiresByAge(t *testing.T) {
	now := time.Unix(1000, 0)
	c := NewCache(8, time.Minute)
	c.now = func() time.Time { return now }
	k := NewDataKey()
	c.Put(k, "vault:v3")
	inner := c.byID[k.ID()].Value.(*cacheEntry).dk

	now = now.Add(time.Minute)
	if got, _ := c.Get(k.ID()); got != nil {
		t.Errorf("Get after ttl = %v, want nil", got)
	}
	if !bytes.Equal(inner.Bytes(), make([]byte, DataKeySize)) {
		t.Errorf("expired key bytes = %x, want zeroes", inner.Bytes())
	}
}

func TestCachePutKeepsCallerKeyIntact(t *testing.T) {
	c := NewCache(1, time.Hour)
	k := NewDataKey()
	want := append([]byte(nil), k.Bytes()...)
	c.Put(k, "vault:v3")
	c.Put(NewDataKey(), "") // evicts and zeroes the cache's copy only
	if !bytes.Equal(k.Bytes(), want) {
		t.Errorf("caller's key changed after eviction")
	}
}

func TestCacheKeepsWrappingKeyVersion(t *testing.T) {
	c := NewCache(2, time.Hour)
	k := NewDataKey()
	c.Put(k, "vault:v2")
	if got, v := c.Get(k.ID()); got == nil || v != "vault:v2" {
		t.Errorf("Get = %v, %q; want the key and vault:v2", got, v)
	}
}
