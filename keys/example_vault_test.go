package keys_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log"
	"time"

	"phix.dev/phix/keys"
)

// ExampleVaultAdmin provisions the demo machines and issues the
// credentials of one of them. The operator token comes from wherever
// operators keep it; the package itself reads no environment.
func ExampleVaultAdmin() {
	ctx := context.Background()
	admin, err := keys.NewVaultAdmin(keys.VaultAdminConfig{
		Address: "https://vault.example:8200",
		CACert:  "/etc/phix/vault-ca.pem",
	}, "operator-token")
	if err != nil {
		log.Fatal(err)
	}
	flows := []keys.Flow{{Sender: "lab-feed", Recipients: []string{"ehr-ingest", "billing"}}}
	if err := admin.Provision(ctx, []string{"lab-feed", "ehr-ingest", "billing"}, flows); err != nil {
		log.Fatal(err)
	}
	// The secret ID goes straight to a 0600 file for the machine; only the
	// role ID comes back.
	roleID, err := admin.IssueSecretID(ctx, "billing", "/etc/phix/billing/secret-id", 0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("billing role ID:", roleID)
}

// ExampleVault wraps a data key for two recipients and signs as lab-feed.
func ExampleVault() {
	ctx := context.Background()
	v, err := keys.NewVault(ctx, keys.VaultConfig{
		Address:      "https://vault.example:8200",
		CACert:       "/etc/phix/vault-ca.pem",
		Machine:      "lab-feed",
		RoleID:       "5f2c6c1e-0000-0000-0000-000000000000",
		SecretIDFile: "/etc/phix/lab-feed/secret-id",
		Timeout:      5 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close(ctx)

	dk := keys.NewDataKey()
	defer dk.Destroy()
	wrapped, err := v.WrapKeys(ctx, []string{"ehr-ingest", "billing"}, dk)
	if err != nil {
		log.Fatal(err)
	}
	sig, keyID, err := v.Sign(ctx, []byte("header bytes"))
	if err != nil {
		log.Fatal(err)
	}
	pub, err := v.PublicKey(ctx, "lab-feed", keyID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(wrapped), ed25519.Verify(pub, []byte("header bytes"), sig))
}
