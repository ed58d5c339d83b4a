package identity_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"phix.dev/phix/identity"
)

func ExampleLoad() {
	data, err := os.MkdirTemp("", "phix-data")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(data)

	// phix up: create the data folder, then record where the broker listens.
	if err := identity.Init(data, []string{"clinic", "lab"}); err != nil {
		log.Fatal(err)
	}
	if err := identity.SetURL(data, "tls://127.0.0.1:4222"); err != nil {
		log.Fatal(err)
	}

	// A machine needs only its own identity folder.
	m, err := identity.Load(identity.IdentityDir(data, "lab"))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := m.TLSConfig(); err != nil {
		log.Fatal(err)
	}
	fmt.Println(m.Name, m.URL, filepath.Base(m.DirectoryDir))
	// Output:
	// lab tls://127.0.0.1:4222 directory
}
