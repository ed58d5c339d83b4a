package cli

import "github.com/spf13/cobra"

// newBridge groups the bridges that carry HL7 v2 and FHIR feeds into and
// out of phix. Each bridge publishes the exact bytes it received, sealed,
// and answers its sender only once the broker has stored them.
func newBridge(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bridge",
		Short: "Bring HL7 v2 (MLLP) and FHIR R4 feeds into and out of phix",
	}
	cmd.AddCommand(newBridgeMLLP(e), newBridgeFHIR(e))
	return cmd
}
