package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"phix.dev/phix/internal/envelope"
	"phix.dev/phix/producer"
)

// contentTypes maps the message types phix knows to MIME types. Other
// types are accepted and sent as application/octet-stream.
var contentTypes = map[string]string{
	"hl7v2": "x-application/hl7-v2+er7",
	"fhir":  "application/fhir+json",
	"bin":   "application/octet-stream",
}

func newPublish(e *env) *cobra.Command {
	var identityDir, to, typ, schema, url, id, policyFile string
	cmd := &cobra.Command{
		Use:   "publish --identity DIR --to NAME[,NAME...] [FILE]",
		Short: "Seal a payload for recipients and publish it",
		Long: `Read FILE (or standard input), seal it for each recipient and publish it as
the machine whose identity folder is given. Prints the message ID once the
broker has stored every recipient's copy. Without --type, HL7 v2 (starts
with MSH, FHS or BHS) and FHIR JSON (starts with '{') are recognised.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			payload, err := readInput(e, args)
			if err != nil {
				return err
			}
			if typ == "" {
				typ = detectType(payload)
			}
			ct, ok := contentTypes[typ]
			if !ok {
				ct = contentTypes["bin"]
			}
			s, err := connect(cmd.Context(), identityDir, url)
			if err != nil {
				return err
			}
			defer s.close()
			rep, stopReports, err := s.startReporter(e)
			if err != nil {
				return err
			}
			defer stopReports()
			allow, err := sourceAllow(identityDir, policyFile, s.machine.Name)
			if err != nil {
				return err
			}
			p, err := producer.New(s.js, s.keys, producer.Config{OnPublish: rep.OnPublish, Allow: allow,
				Registry: s.producerRegistry()})
			if err != nil {
				return err
			}
			opts := []producer.Option{producer.WithType(typ, ct), producer.WithSchemaID(schema)}
			if id != "" {
				opts = append(opts, producer.WithMessageID(id))
			}
			rc, err := p.Publish(cmd.Context(), splitList(to), payload, opts...)
			if err != nil {
				return err
			}
			if len(rc.Duplicates) > 0 {
				// The broker kept the copy it already had under this ID;
				// say so, since different content would have been dropped.
				e.log.Warn("message id already stored; nothing new stored",
					"id", rc.MessageID, "recipients", strings.Join(rc.Duplicates, ","))
			}
			fmt.Fprintln(e.stdout, rc.MessageID)
			return nil
		},
	}
	cmd.Flags().StringVar(&identityDir, "identity", "", "identity folder of the sending machine (required)")
	cmd.Flags().StringVar(&to, "to", "", "comma-separated recipient machine names (required)")
	cmd.Flags().StringVar(&typ, "type", "", "message type: hl7v2, fhir, or another lowercase token (default: detected)")
	cmd.Flags().StringVar(&schema, "schema", "", "schema ID recorded in the signed header")
	cmd.Flags().StringVar(&url, "url", "", "broker URL (default: the one recorded by phix up)")
	cmd.Flags().StringVar(&id, "id", "", "message ID, to retry a publish without duplicates (default: random)")
	cmd.Flags().StringVar(&policyFile, "policy", "", "policy file to refuse disallowed recipients before sending (default: the data folder's policy.yaml, if any)")
	cmd.MarkFlagRequired("identity")
	cmd.MarkFlagRequired("to")
	return cmd
}

// readInput reads the payload from FILE or standard input, refusing more
// than the envelope can carry before it has all been read into memory.
func readInput(e *env, args []string) ([]byte, error) {
	var r io.Reader = e.stdin
	name := "standard input"
	if len(args) == 1 && args[0] != "-" {
		f, err := os.Open(args[0])
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r, name = f, args[0]
	}
	b, err := io.ReadAll(io.LimitReader(r, envelope.MaxPlaintextSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > envelope.MaxPlaintextSize {
		return nil, fmt.Errorf("%s is larger than the %d-byte limit for one message", name, envelope.MaxPlaintextSize)
	}
	return b, nil
}

// detectType guesses the message type from the first bytes: HL7 v2
// messages and batches start with their header segment, FHIR JSON with an
// object.
func detectType(b []byte) string {
	t := bytes.TrimLeft(b, " \t\r\n\ufeff")
	for _, seg := range []string{"MSH", "FHS", "BHS"} {
		if bytes.HasPrefix(t, []byte(seg)) {
			return "hl7v2"
		}
	}
	if bytes.HasPrefix(t, []byte("{")) {
		return "fhir"
	}
	return "bin"
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
