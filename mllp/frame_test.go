package mllp_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"phix.dev/phix/internal/testcases"
	"phix.dev/phix/mllp"
)

// casesDir returns the shared HL7 v2 and FHIR test inputs.
func casesDir(t testing.TB) string {
	t.Helper()
	return testcases.Dir(t)
}

func loadCase(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(casesDir(t), name))
	if err != nil {
		t.Fatalf("reading case: %v", err)
	}
	return b
}

func frame(payload []byte) []byte {
	out := append([]byte{mllp.StartBlock}, payload...)
	return append(out, mllp.EndBlock, mllp.CarriageReturn)
}

// chunkReader returns its chunks one per Read, as a TCP stream split at
// arbitrary points would.
type chunkReader struct{ chunks [][]byte }

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.chunks) > 0 && len(r.chunks[0]) == 0 {
		r.chunks = r.chunks[1:]
	}
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.chunks[0])
	r.chunks[0] = r.chunks[0][n:]
	return n, nil
}

func splitAt(b []byte, points ...int) [][]byte {
	var out [][]byte
	prev := 0
	for _, p := range points {
		out = append(out, b[prev:p])
		prev = p
	}
	return append(out, b[prev:])
}

// readAll reads frames until the stream ends and returns them with the
// discarded byte count.
func readAll(t testing.TB, r *mllp.Reader) ([][]byte, int64) {
	t.Helper()
	var frames [][]byte
	for {
		f, err := r.ReadFrame()
		if err == io.EOF {
			return frames, r.Discarded()
		}
		if err != nil {
			t.Fatalf("ReadFrame = %v, want a frame or io.EOF", err)
		}
		frames = append(frames, f)
	}
}

// stream is a mix of every framing fault the cases show: junk before the
// first frame (23), pipelined frames (21), a LF after a frame (23).
func stream(t testing.TB) (raw []byte, payloads [][]byte, junk int64) {
	t.Helper()
	a := []byte("MSH|^~\\&|A|F|B|H|20250314||ADT^A01|F1|P|2.5.1\rPID|1\r")
	b := []byte("MSH|^~\\&|A|F|B|H|20250314||ADT^A08|F2|P|2.5.1\rPID|2\r")
	c := []byte("MSH|^~\\&|A|F|B|H|20250314||ADT^A04|F3|P|2.5.1\rPID|3\r")
	raw = append([]byte("junk\r\n"), frame(a)...)
	raw = append(raw, frame(b)...)
	raw = append(raw, '\n')
	raw = append(raw, frame(c)...)
	raw = append(raw, '\n')
	return raw, [][]byte{a, b, c}, 6 + 1 + 1
}

// TestReadFrameEverySplit feeds the stream split at every point and at
// every pair of points, so each delimiter arrives alone, at the start and
// at the end of a read.
func TestReadFrameEverySplit(t *testing.T) {
	raw, want, junk := stream(t)
	check := func(chunks [][]byte) {
		t.Helper()
		got, discarded := readAll(t, mllp.NewReader(&chunkReader{chunks: chunks}, 0))
		if !slices.EqualFunc(want, got, bytes.Equal) || discarded != junk {
			t.Fatalf("split %v: frames differ (-want +got):\n%s\ndiscarded %d, want %d",
				lens(chunks), cmp.Diff(want, got), discarded, junk)
		}
	}
	for i := 0; i <= len(raw); i++ {
		check(splitAt(raw, i))
		for j := i; j <= len(raw); j += 3 {
			check(splitAt(raw, i, j))
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 500 {
		var points []int
		for p := rng.IntN(8); p < len(raw); p += 1 + rng.IntN(12) {
			points = append(points, p)
		}
		check(splitAt(raw, points...))
	}
}

func lens(chunks [][]byte) []int {
	var out []int
	for _, c := range chunks {
		out = append(out, len(c))
	}
	return out
}

func TestReadFrameCases(t *testing.T) {
	tests := []struct {
		file  string
		ids   int
		junk  int64
		sizes []int
	}{
		{"20-mllp-split-reads.hl7", 1, 0, []int{235}},
		{"21-mllp-two-frames-one-read.hl7", 2, 0, nil},
		{"23-mllp-junk-and-trailing-lf.hl7", 2, 40, nil},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			raw := loadCase(t, tt.file)
			frames, discarded := readAll(t, mllp.NewReader(bytes.NewReader(raw), 0))
			if len(frames) != tt.ids || discarded != tt.junk {
				t.Errorf("ReadFrame: %d frames, %d discarded; want %d, %d", len(frames), discarded, tt.ids, tt.junk)
			}
			for i, s := range tt.sizes {
				if len(frames[i]) != s {
					t.Errorf("frame %d = %d bytes, want %d", i, len(frames[i]), s)
				}
			}
		})
	}
}

func TestReadLargeFrameOneByteAtATime(t *testing.T) {
	msg := loadCase(t, "17-large-obx-base64.hl7")
	chunks := make([][]byte, 0, len(msg)+3)
	for _, b := range frame(msg) {
		chunks = append(chunks, []byte{b})
	}
	frames, _ := readAll(t, mllp.NewReader(&chunkReader{chunks: chunks}, 0))
	if len(frames) != 1 || !bytes.Equal(frames[0], msg) {
		t.Fatalf("ReadFrame of case 17 one byte per read: %d frames, want the message once", len(frames))
	}
}

func TestReadFrameTooLarge(t *testing.T) {
	msg := loadCase(t, "17-large-obx-base64.hl7")
	next := []byte("MSH|^~\\&|A|F|B|H|20250314||ADT^A01|AFTER|P|2.5.1\r")
	raw := append(frame(msg), frame(next)...)
	for _, limit := range []int{len(msg) - 1, 1000, 70000} {
		r := mllp.NewReader(&chunkReader{chunks: splitAt(raw, 1, 5000, 70000, 99000)}, limit)
		_, err := r.ReadFrame()
		var tl *mllp.FrameTooLargeError
		if !errors.As(err, &tl) {
			t.Fatalf("ReadFrame over limit %d = %v, want *FrameTooLargeError", limit, err)
		}
		if tl.Limit != limit || tl.Size != int64(len(msg)) || !bytes.HasPrefix(msg, tl.Head) || len(tl.Head) > 64<<10 || len(tl.Head) < 100 {
			t.Errorf("FrameTooLargeError = limit %d size %d head %d, want %d, %d, a prefix <= 64 KiB", tl.Limit, tl.Size, len(tl.Head), limit, len(msg))
		}
		got, err := r.ReadFrame()
		if err != nil || !bytes.Equal(got, next) {
			t.Errorf("ReadFrame after an oversized frame = %q, %v; want the next frame", got, err)
		}
	}
}

func TestReadFrameFaults(t *testing.T) {
	a := []byte("MSH|^~\\&|A\r")
	tests := []struct {
		name      string
		raw       []byte
		frames    [][]byte
		err       error
		discarded int64
	}{
		{"empty stream", nil, nil, io.EOF, 0},
		{"only junk", []byte("hello\r\n"), nil, io.EOF, 7},
		{"ends mid-frame", append([]byte{mllp.StartBlock}, a...), nil, io.ErrUnexpectedEOF, int64(len(a) + 1)},
		{"restarted frame", append(append([]byte{mllp.StartBlock}, "MSH|half"...), frame(a)...), [][]byte{a}, io.EOF, 9},
		{"end block without CR", append(append([]byte{mllp.StartBlock}, a...), mllp.EndBlock, mllp.StartBlock, 'x', mllp.EndBlock, mllp.CarriageReturn), [][]byte{a, []byte("x")}, io.EOF, 0},
		{"end block then EOF", append(append([]byte{mllp.StartBlock}, a...), mllp.EndBlock), [][]byte{a}, io.EOF, 0},
		{"empty frame", []byte{mllp.StartBlock, mllp.EndBlock, mllp.CarriageReturn}, [][]byte{{}}, io.EOF, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mllp.NewReader(bytes.NewReader(tt.raw), 0)
			var got [][]byte
			var err error
			for {
				var f []byte
				if f, err = r.ReadFrame(); err != nil {
					break
				}
				got = append(got, f)
			}
			if !errors.Is(err, tt.err) || r.Discarded() != tt.discarded {
				t.Errorf("ReadFrame ended with %v, %d discarded; want %v, %d", err, r.Discarded(), tt.err, tt.discarded)
			}
			if diff := cmp.Diff(tt.frames, got, cmp.Comparer(bytes.Equal)); diff != "" {
				t.Errorf("frames differ (-want +got):\n%s", diff)
			}
		})
	}
}

// countingWriter records the size of each Write.
type countingWriter struct{ writes [][]byte }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes = append(w.writes, bytes.Clone(p))
	return len(p), nil
}

func TestWriteFrame(t *testing.T) {
	var cw countingWriter
	w := mllp.NewWriter(&cw)
	if err := w.WriteFrame([]byte("MSH|x\r")); err != nil {
		t.Fatal(err)
	}
	if len(cw.writes) != 1 || !bytes.Equal(cw.writes[0], frame([]byte("MSH|x\r"))) {
		t.Errorf("WriteFrame wrote %q, want one framed write", cw.writes)
	}
	for _, bad := range [][]byte{{'a', mllp.StartBlock}, {mllp.EndBlock}} {
		if err := w.WriteFrame(bad); !errors.Is(err, mllp.ErrInvalidPayload) {
			t.Errorf("WriteFrame(%q) = %v, want %v", bad, err, mllp.ErrInvalidPayload)
		}
	}
}
