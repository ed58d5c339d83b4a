package cli

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"

	"phix.dev/phix/broker"
	"phix.dev/phix/identity"
)

func newUp(e *env) *cobra.Command {
	var dir, listen, monitor string
	var vf vaultFlags // vault.go
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run the embedded broker (local keys by default, or Vault)",
		Long: `Run the embedded broker on the local key provider, the default that needs
nothing installed. On first start it writes the demo access policy to
DIR/policy.yaml and creates a development CA and an identity for each of
its machines under DIR/identities; later starts reuse them and renew
certificates that are close to expiry. Changes to policy.yaml apply while
running. Runs until interrupted.

With --vault ADDR (and an operator token in --vault-token-file or
VAULT_TOKEN), the machines' keys live in Vault instead: phix provisions
their transit keys, policies and AppRoles from the policy, writes each
identity folder a vault.json and an AppRole secret ID file, and creates the
keyadmin identity used by phix keys.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			host, port, err := splitListen(listen)
			if err != nil {
				return err
			}
			monPort, err := monitorPort(monitor)
			if err != nil {
				return err
			}
			release, err := identity.Lock(dir)
			if err != nil {
				return err
			}
			defer release()
			pol, polPath, err := deploymentPolicy(e, dir)
			if err != nil {
				return err
			}
			machines := pol.Active()
			if err := identity.Init(dir, machines); err != nil {
				return err
			}
			keyAdmins, err := setUpVault(cmd.Context(), &vf, dir, pol) // vault.go; nil without --vault
			if err != nil {
				return err
			}
			tlsConf, err := identity.BrokerTLS(dir)
			if err != nil {
				return err
			}
			mon, err := newMonitoring(e, pol, polPath)
			if err != nil {
				return err
			}
			b, err := broker.New(broker.Config{
				Monitor:     mon.mon.Handler(),
				Audit:       broker.AuditConfig{OnRecord: mon.observe},
				StoreDir:    dir,
				Host:        host,
				Port:        port,
				TLS:         tlsConf,
				Policy:      pol,
				MonitorPort: monPort,
				KeyAdmins:   keyAdmins,
				Logger:      e.log,
			})
			if err != nil {
				return err
			}
			mon.use(b)
			ctx := cmd.Context()
			if err := b.Start(ctx); err != nil {
				return err
			}
			defer b.Close()
			if err := identity.SetURL(dir, b.ClientURL()); err != nil {
				return err
			}
			ep := endpoints{ClientURL: b.ClientURL(), MonitorURL: b.MonitorURL()}
			if err := writeEndpoints(dir, ep); err != nil {
				return err
			}
			go watchPolicy(ctx, e, b, dir, polPath)
			fmt.Fprintf(e.stdout, "phix broker listening on %s\n", b.ClientURL())
			if ep.MonitorURL != "" {
				fmt.Fprintf(e.stdout, "monitoring on %s (client certificate required)\n", ep.MonitorURL)
			}
			for _, m := range machines {
				fmt.Fprintf(e.stdout, "  identity %-12s %s\n", m, filepath.Join(dir, "identities", m))
			}
			fmt.Fprintln(e.stdout, "press Ctrl-C to stop")
			<-ctx.Done()
			e.log.Info("shutting down")
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "data", "phix-data", "data folder for keys, certificates and the message store")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:4222", "address for client connections (TLS 1.3 only)")
	cmd.Flags().StringVar(&monitor, "monitor", "8222", "port of the HTTPS monitoring endpoint on the --listen host (0: any free port, off: none)")
	vf.add(cmd, "use the Vault at this address as key provider instead of local keys")
	return cmd
}

func splitListen(s string) (string, int, error) {
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, fmt.Errorf("--listen %q: %v", s, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("--listen %q: bad port", s)
	}
	if port == 0 {
		port = -1 // let the system choose; nats-server reads 0 as its default
	}
	return host, port, nil
}
