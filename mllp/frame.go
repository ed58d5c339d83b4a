package mllp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"phix.dev/phix/hl7"
)

// Frame delimiters of MLLP release 1 (HL7 v2.5 Appendix C): a frame is
// StartBlock, the message, EndBlock, CarriageReturn.
const (
	StartBlock     = 0x0b
	EndBlock       = 0x1c
	CarriageReturn = 0x0d
)

// headLimit is how much of an oversized frame a [Reader] keeps, in bytes:
// enough for any realistic MSH segment, so the refusal can be
// acknowledged with the message's control ID.
const headLimit = 64 << 10

// ErrInvalidPayload is returned by [Writer.WriteFrame] for a payload that
// contains a frame delimiter and so cannot be framed unambiguously.
var ErrInvalidPayload = errors.New("mllp: payload contains a start or end block byte")

// FrameTooLargeError reports a frame longer than the reader's limit. The
// frame was skipped without being buffered whole; the stream can still be
// read.
type FrameTooLargeError struct {
	Limit int    // the limit, in bytes
	Size  int64  // the frame's payload size, in bytes
	Head  []byte // the start of the payload, at most 64 KiB
}

func (e *FrameTooLargeError) Error() string {
	return fmt.Sprintf("mllp: frame of %d bytes exceeds %d bytes", e.Size, e.Limit)
}

// Reader reads MLLP frames from a byte stream. It reassembles frames
// however the stream was split, returns pipelined frames one at a time,
// and discards bytes outside frames, counting them. It is not safe for
// concurrent use.
type Reader struct {
	br        *bufio.Reader
	max       int
	discarded int64
}

// NewReader returns a Reader of r that refuses frames longer than max
// bytes; max <= 0 means [hl7.DefaultMaxSize]. At most max bytes plus a
// 16 KiB buffer are held at any time.
func NewReader(r io.Reader, max int) *Reader {
	if max <= 0 {
		max = hl7.DefaultMaxSize
	}
	return &Reader{br: bufio.NewReaderSize(r, 16<<10), max: max}
}

// Discarded returns how many bytes outside frames the reader has skipped
// so far: bytes before a start block, and frames abandoned by a new start
// block or the end of the stream.
func (r *Reader) Discarded() int64 { return r.discarded }

// ReadFrame returns the payload of the next frame, without its
// delimiters, in a new slice the caller owns. The frame ends at EndBlock
// followed by CarriageReturn; ReadFrame waits for that CarriageReturn, so
// a frame is never returned before the sender finished it (a different
// byte after EndBlock also ends the frame and is left for the next call).
// A start block inside a frame abandons the partial frame and begins a
// new one.
//
// At the end of the stream between frames it returns [io.EOF]; in the
// middle of one, [io.ErrUnexpectedEOF]. A frame over the limit returns a
// [*FrameTooLargeError] after the whole frame was skipped, and the reader
// stays usable. After any other error the reader must not be used again.
func (r *Reader) ReadFrame() ([]byte, error) {
	if err := r.skipToStart(); err != nil {
		return nil, err
	}
	var frame []byte
	for {
		chunk, err := r.br.ReadSlice(EndBlock)
		if i := bytes.LastIndexByte(chunk, StartBlock); i >= 0 {
			r.discarded += int64(len(frame) + i + 1)
			frame, chunk = frame[:0], chunk[i+1:]
		}
		body := chunk
		if err == nil {
			body = chunk[:len(chunk)-1]
		}
		if len(frame)+len(body) > r.max {
			return nil, r.skipLarge(append(frame, body...), err)
		}
		frame = append(frame, body...)
		switch err {
		case nil:
			r.skipEndCR()
			return frame, nil
		case bufio.ErrBufferFull:
			continue
		case io.EOF:
			r.discarded += int64(len(frame) + 1)
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}

// skipToStart discards bytes up to and including the next start block.
func (r *Reader) skipToStart() error {
	for {
		chunk, err := r.br.ReadSlice(StartBlock)
		if err == nil {
			r.discarded += int64(len(chunk) - 1)
			return nil
		}
		r.discarded += int64(len(chunk))
		if err != bufio.ErrBufferFull {
			return err
		}
	}
}

// skipEndCR consumes the CarriageReturn that should follow an EndBlock,
// waiting for it if it has not arrived yet.
func (r *Reader) skipEndCR() {
	b, err := r.br.ReadByte()
	if err == nil && b != CarriageReturn {
		r.br.UnreadByte()
	}
}

// skipLarge discards the rest of an oversized frame, whose first bytes
// are in got and whose last read ended with err.
func (r *Reader) skipLarge(got []byte, err error) error {
	size := int64(len(got))
	e := &FrameTooLargeError{Limit: r.max, Head: bytes.Clone(got[:min(len(got), headLimit)])}
	for err == bufio.ErrBufferFull {
		var chunk []byte
		chunk, err = r.br.ReadSlice(EndBlock)
		size += int64(len(chunk))
		if err == nil {
			size--
		}
	}
	e.Size = size
	switch err {
	case nil:
		r.skipEndCR()
		return e
	case io.EOF:
		r.discarded += size + 1
		return io.ErrUnexpectedEOF
	}
	return err
}

// Writer writes MLLP frames. It is not safe for concurrent use.
type Writer struct {
	w io.Writer
}

// NewWriter returns a Writer to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// WriteFrame writes payload as one frame, in a single Write call so that
// a frame is never interleaved with another writer's. A payload
// containing StartBlock or EndBlock is refused with [ErrInvalidPayload].
func (w *Writer) WriteFrame(payload []byte) error {
	if bytes.IndexByte(payload, StartBlock) >= 0 || bytes.IndexByte(payload, EndBlock) >= 0 {
		return ErrInvalidPayload
	}
	buf := make([]byte, 0, len(payload)+3)
	buf = append(buf, StartBlock)
	buf = append(buf, payload...)
	buf = append(buf, EndBlock, CarriageReturn)
	_, err := w.w.Write(buf)
	return err
}
