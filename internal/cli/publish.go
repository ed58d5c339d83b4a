package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

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
	var identityDir, to, typ, schema, url, id string
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
			p, err := producer.New(s.js, s.keys, producer.Config{})
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
	cmd.MarkFlagRequired("identity")
	cmd.MarkFlagRequired("to")
	return cmd
}

func readInput(e *env, args []string) ([]byte, error) {
	if len(args) == 0 || args[0] == "-" {
		return io.ReadAll(e.stdin)
	}
	return os.ReadFile(args[0])
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
