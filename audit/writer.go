package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"phix.dev/phix/internal/subjects"
)

// Defaults for zero [WriterConfig] fields.
const (
	DefaultHeartbeatInterval  = time.Minute
	DefaultCheckpointInterval = time.Minute
	DefaultCheckpointRecords  = 1000
)

// Errors returned by [Writer] methods.
var (
	// ErrClosed means the writer has been closed.
	ErrClosed = errors.New("audit: writer closed")
	// ErrConflict means the stream changed under the writer: another
	// writer appended, which the single-writer design forbids. The writer
	// refuses to go on rather than interleave two trails.
	ErrConflict = errors.New("audit: another writer appended to the trail")
)

// WriterConfig configures a [Writer]. Zero values select the defaults.
type WriterConfig struct {
	// Signer signs checkpoints. Required.
	Signer *Signer

	// HeartbeatInterval is how long the writer may stay quiet before it
	// appends a heartbeat record. Default [DefaultHeartbeatInterval].
	HeartbeatInterval time.Duration

	// CheckpointInterval and CheckpointRecords bound how long, and over
	// how many records, the trail goes without a signed checkpoint.
	// Defaults [DefaultCheckpointInterval] and [DefaultCheckpointRecords].
	CheckpointInterval time.Duration
	CheckpointRecords  int

	// Now returns the current time; nil means time.Now.
	Now func() time.Time

	// MaxAge is how long records are kept; less than [Retention] (six
	// years), zero included, means Retention.
	MaxAge time.Duration

	// OnRecord, if set, is called with each record once it is stored,
	// for real-time monitoring. It is called outside the writer's lock,
	// possibly from several goroutines at once, and must not block.
	OnRecord func(Record)
}

func (c WriterConfig) withDefaults() (WriterConfig, error) {
	if c.Signer == nil {
		return c, errors.New("audit: writer needs a signer")
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = DefaultCheckpointInterval
	}
	if c.CheckpointRecords == 0 {
		c.CheckpointRecords = DefaultCheckpointRecords
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.HeartbeatInterval < 0 || c.CheckpointInterval < 0 || c.CheckpointRecords < 0 {
		return c, errors.New("audit: negative writer interval")
	}
	return c, nil
}

// Writer is the one appender of the audit trail. Create it with
// [NewWriter] and stop it with [Writer.Close]. Its methods are safe for
// concurrent use; appends are serialised.
type Writer struct {
	js     jetstream.JetStream
	stream jetstream.Stream
	cfg    WriterConfig

	mu sync.Mutex // guards the fields below and serialises appends
	// tree holds the Merkle range of every stored record.
	tree *tree
	// lastSeq is the stream sequence of the last stored message, which
	// every append expects, so a second writer is detected.
	lastSeq         uint64
	lastTime        time.Time // time of the last record
	lastCheckpoint  time.Time
	sinceCheckpoint int // records after the last checkpoint
	broken          error
	closed          bool
	sub             *nats.Subscription

	stop chan struct{} // closed by Close to end the ticker loop
	done chan struct{} // closed when the ticker loop has ended
}

// NewWriter creates or updates the audit stream through js, resumes the
// trail from what is stored, appends a [KindStart] record and starts
// appending heartbeats and checkpoints. The caller must call
// [Writer.Close], which keeps js's connection open.
func NewWriter(ctx context.Context, js jetstream.JetStream, cfg WriterConfig) (*Writer, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s, err := js.CreateOrUpdateStream(ctx, StreamConfig(cfg.MaxAge))
	if err != nil {
		return nil, fmt.Errorf("audit: creating stream: %w", err)
	}
	w := &Writer{js: js, stream: s, cfg: cfg, stop: make(chan struct{}), done: make(chan struct{})}
	w.mu.Lock()
	err = w.resumeLocked(ctx)
	w.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if _, err := w.Append(ctx, Record{Kind: KindStart, Source: SourceBroker}); err != nil {
		return nil, err
	}
	go w.loop()
	return w, nil
}

// resumeLocked loads the tree from the last checkpoint and the records
// stored after it.
func (w *Writer) resumeLocked(ctx context.Context) error {
	info, err := w.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("audit: stream info: %w", err)
	}
	w.tree, w.lastSeq, w.sinceCheckpoint = newTree(), 0, 0
	last := info.State.LastSeq
	if last == 0 {
		return nil
	}
	start := info.State.FirstSeq
	cpMsg, err := w.stream.GetLastMsgForSubject(ctx, subjects.AuditCheckpointSubject)
	switch {
	case err == nil:
		var cp Checkpoint
		if err := json.Unmarshal(cpMsg.Data, &cp); err != nil {
			return fmt.Errorf("audit: decoding checkpoint at seq %d: %v", cpMsg.Sequence, err)
		}
		t, err := resumeTree(cp.Size, cp.Frontier)
		if err != nil {
			return fmt.Errorf("audit: checkpoint at seq %d: %v", cpMsg.Sequence, err)
		}
		if !bytes.Equal(t.root(), cp.Root) {
			return fmt.Errorf("audit: checkpoint at seq %d: frontier does not match root", cpMsg.Sequence)
		}
		w.tree, w.lastTime, w.lastCheckpoint = t, cp.Time, cp.Time
		start = cpMsg.Sequence + 1
	case !errors.Is(err, jetstream.ErrMsgNotFound):
		return fmt.Errorf("audit: last checkpoint: %w", err)
	}
	for seq := start; seq <= last; seq++ {
		m, err := w.stream.GetMsg(ctx, seq)
		if err != nil {
			return fmt.Errorf("audit: reading seq %d: %w", seq, err)
		}
		if m.Subject != subjects.AuditRecordSubject {
			continue
		}
		var r Record
		if err := json.Unmarshal(m.Data, &r); err != nil || r.Index != w.tree.size() {
			return fmt.Errorf("audit: trail inconsistent at seq %d", seq)
		}
		w.tree.append(LeafHash(m.Data))
		w.lastTime = r.Time
		w.sinceCheckpoint++
	}
	w.lastSeq = last
	return nil
}

// Append stores rec as the next record and returns it as stored, with its
// index and time set. Source defaults to [SourceBroker]. Append returns
// [ErrClosed] after Close and [ErrConflict] once another writer has been
// detected.
func (w *Writer) Append(ctx context.Context, rec Record) (Record, error) {
	w.mu.Lock()
	stored, err := w.appendLocked(ctx, rec)
	if err == nil && w.sinceCheckpoint >= w.cfg.CheckpointRecords {
		_, err = w.checkpointLocked(ctx)
	}
	w.mu.Unlock()
	if err != nil {
		return Record{}, err
	}
	if w.cfg.OnRecord != nil {
		w.cfg.OnRecord(stored)
	}
	return stored, nil
}

func (w *Writer) appendLocked(ctx context.Context, rec Record) (Record, error) {
	if err := w.usableLocked(); err != nil {
		return Record{}, err
	}
	rec.Index = w.tree.size()
	rec.Time = w.cfg.Now().UTC()
	// Records are in time order even if the clock steps back, so that a
	// verifier can rely on it.
	if rec.Time.Before(w.lastTime) {
		rec.Time = w.lastTime
	}
	if rec.Source == "" {
		rec.Source = SourceBroker
	}
	rec.clean()
	b, err := json.Marshal(rec)
	if err != nil {
		return Record{}, fmt.Errorf("audit: encoding record: %v", err)
	}
	if err := w.publishLocked(ctx, subjects.AuditRecordSubject, b); err != nil {
		return Record{}, err
	}
	w.tree.append(LeafHash(b))
	w.lastTime = rec.Time
	w.sinceCheckpoint++
	return rec, nil
}

func (w *Writer) usableLocked() error {
	switch {
	case w.closed:
		return ErrClosed
	case w.broken != nil:
		return w.broken
	}
	return nil
}

// publishLocked stores data on subject, expecting the stream to end at
// lastSeq. If the publish fails, the stream's last message tells whether
// it was stored all the same (the acknowledgement was lost), not stored,
// or whether someone else appended.
func (w *Writer) publishLocked(ctx context.Context, subject string, data []byte) error {
	msg := &nats.Msg{Subject: subject, Data: data}
	ack, err := w.js.PublishMsg(ctx, msg,
		jetstream.WithExpectStream(subjects.AuditStream),
		jetstream.WithExpectLastSequence(w.lastSeq))
	if err == nil {
		w.lastSeq = ack.Sequence
		return nil
	}
	info, ierr := w.stream.Info(ctx)
	if ierr != nil {
		return fmt.Errorf("audit: storing record: %w", err)
	}
	switch last := info.State.LastSeq; {
	case last == w.lastSeq:
		return fmt.Errorf("audit: storing record: %w", err)
	case last == w.lastSeq+1:
		m, gerr := w.stream.GetMsg(ctx, last)
		if gerr == nil && m.Subject == subject && bytes.Equal(m.Data, data) {
			w.lastSeq = last
			return nil
		}
	}
	w.broken = ErrConflict
	return ErrConflict
}

// Checkpoint appends a signed checkpoint over every record stored so far
// and returns it. A checkpoint is written even if nothing changed since
// the last one, so an exporter can seal the trail on demand.
func (w *Writer) Checkpoint(ctx context.Context) (*Checkpoint, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.checkpointLocked(ctx)
}

func (w *Writer) checkpointLocked(ctx context.Context) (*Checkpoint, error) {
	if err := w.usableLocked(); err != nil {
		return nil, err
	}
	now := w.cfg.Now().UTC()
	if now.Before(w.lastTime) {
		now = w.lastTime
	}
	cp := &Checkpoint{
		Size: w.tree.size(), Root: w.tree.root(), Time: now, Frontier: w.tree.frontier(),
	}
	w.cfg.Signer.sign(cp)
	b, err := json.Marshal(cp)
	if err != nil {
		return nil, fmt.Errorf("audit: encoding checkpoint: %v", err)
	}
	if err := w.publishLocked(ctx, subjects.AuditCheckpointSubject, b); err != nil {
		return nil, err
	}
	w.sinceCheckpoint, w.lastCheckpoint = 0, now
	return cp, nil
}

// Size returns how many records the trail holds.
func (w *Writer) Size() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.tree.size()
}

// loop appends heartbeats when the trail is quiet and checkpoints when
// records have waited long enough.
func (w *Writer) loop() {
	defer close(w.done)
	tick := min(w.cfg.HeartbeatInterval, w.cfg.CheckpointInterval) / 4
	t := time.NewTicker(max(tick, 5*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			w.tick()
		}
	}
}

func (w *Writer) tick() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	now := w.cfg.Now()
	w.mu.Lock()
	quiet := now.Sub(w.lastTime) >= w.cfg.HeartbeatInterval
	w.mu.Unlock()
	if quiet {
		// An error here is kept by the writer (broken) or is transient;
		// the next tick tries again.
		w.Append(ctx, Record{Kind: KindHeartbeat})
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sinceCheckpoint > 0 && now.Sub(w.lastCheckpoint) >= w.cfg.CheckpointInterval {
		w.checkpointLocked(ctx)
	}
}

// Close stops the writer: it stops taking machine reports, appends a
// [KindStop] record and a final checkpoint, so that a clean shutdown
// leaves the whole trail sealed. It does not close the connection.
// Calling Close again does nothing.
func (w *Writer) Close(ctx context.Context) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	sub := w.sub
	w.mu.Unlock()
	if sub != nil {
		sub.Unsubscribe()
	}
	close(w.stop)
	<-w.done

	w.mu.Lock()
	stored, err := w.appendLocked(ctx, Record{Kind: KindStop})
	if err == nil {
		_, err = w.checkpointLocked(ctx)
	}
	w.closed = true
	w.mu.Unlock()
	if err == nil && w.cfg.OnRecord != nil {
		w.cfg.OnRecord(stored)
	}
	return err
}
