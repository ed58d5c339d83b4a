package keys_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"phix.dev/phix/keys"
)

func ExampleOpenLocal() {
	root, err := os.MkdirTemp("", "phix-keys")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(root)
	directory := filepath.Join(root, "directory")

	// Each machine generates its keys once; its public record lands in
	// the shared directory.
	for _, name := range []string{"clinic", "lab"} {
		if err := keys.GenerateLocal(filepath.Join(root, name), directory, name); err != nil {
			log.Fatal(err)
		}
	}
	clinic, err := keys.OpenLocal(filepath.Join(root, "clinic"), directory, "clinic")
	if err != nil {
		log.Fatal(err)
	}
	lab, err := keys.OpenLocal(filepath.Join(root, "lab"), directory, "lab")
	if err != nil {
		log.Fatal(err)
	}

	ctx := context.Background()
	dk := keys.NewDataKey()
	wrapped, err := clinic.WrapKey(ctx, "lab", dk)
	if err != nil {
		log.Fatal(err)
	}
	got, err := lab.UnwrapKey(ctx, dk.ID(), wrapped)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("lab unwrapped the key:", bytes.Equal(got.Bytes(), dk.Bytes()))
	fmt.Println(lab)
	// Output:
	// lab unwrapped the key: true
	// keys.Local(lab)
}
