// Command r4gen prints the FHIR R4 element table that package fhir embeds
// (fhir/r4.txt). It walks the R4 protocol buffer descriptors of
// github.com/google/fhir, which are generated from the R4 StructureDefinitions,
// starting at the resource types and following every element type.
//
// Output format, one record a line, fields separated by a tab:
//
//	prim <name> <json kind: string|number|bool> <regex>
//	type <name> <kind: resource|complex|backbone>
//	elem <json name> <type[,type...]> <flags> <codes>
//
// elem lines belong to the type line above them. Flags: r repeated, q
// required, x choice (the JSON name is the base, such as "value", and each
// type is written suffix=type: value + Quantity holds a Quantity), - none. Codes lists the codes of a required binding,
// separated by |, or - for none. The type Resource stands for any resource.
package main

import (
	"bufio"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	apb "github.com/google/fhir/go/proto/google/fhir/proto/annotations_go_proto"
	_ "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	bpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
)

const corePrefix = "google.fhir.r4.core."

type gen struct {
	out   *bufio.Writer
	seen  map[protoreflect.FullName]bool
	queue []protoreflect.MessageDescriptor
	prims map[string]bool
}

func main() {
	g := &gen{
		out:   bufio.NewWriter(os.Stdout),
		seen:  make(map[protoreflect.FullName]bool),
		prims: make(map[string]bool),
	}
	fmt.Fprintln(g.out, "# FHIR R4 element table derived from the R4 protos of github.com/google/fhir/go v0.7.4")
	fmt.Fprintln(g.out, "# by fhir/internal/r4gen. Do not edit by hand; regenerate instead.")
	cr := (&bpb.ContainedResource{}).ProtoReflect().Descriptor()
	fs := cr.Fields()
	var roots []protoreflect.MessageDescriptor
	for i := 0; i < fs.Len(); i++ {
		roots = append(roots, fs.Get(i).Message())
	}
	sort.Slice(roots, func(i, j int) bool { return roots[i].Name() < roots[j].Name() })
	for _, m := range roots {
		g.enqueue(m)
	}
	for len(g.queue) > 0 {
		m := g.queue[0]
		g.queue = g.queue[1:]
		g.emitType(m)
	}
	if err := g.out.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, "r4gen:", err)
		os.Exit(1)
	}
}

func (g *gen) enqueue(m protoreflect.MessageDescriptor) {
	if g.seen[m.FullName()] || isResourceAny(m) {
		return
	}
	g.seen[m.FullName()] = true
	g.queue = append(g.queue, m)
}

func kindOf(m protoreflect.MessageDescriptor) apb.StructureDefinitionKindValue {
	return proto.GetExtension(m.Options(), apb.E_StructureDefinitionKind).(apb.StructureDefinitionKindValue)
}

func isPrimitive(m protoreflect.MessageDescriptor) bool {
	return kindOf(m) == apb.StructureDefinitionKindValue_KIND_PRIMITIVE_TYPE
}

func isChoice(m protoreflect.MessageDescriptor) bool {
	return proto.HasExtension(m.Options(), apb.E_IsChoiceType)
}

// isResourceAny reports whether m holds "any resource": contained
// resources are google.protobuf.Any, entry resources ContainedResource.
func isResourceAny(m protoreflect.MessageDescriptor) bool {
	return m.FullName() == "google.protobuf.Any" || m.FullName() == corePrefix+"ContainedResource"
}

// primName is the FHIR primitive a primitive message represents; a
// specialised code type (such as Patient.GenderCode) is a code.
func primName(m protoreflect.MessageDescriptor) string {
	if base := proto.GetExtension(m.Options(), apb.E_FhirProfileBase).([]string); len(base) > 0 {
		return path.Base(base[0])
	}
	return path.Base(proto.GetExtension(m.Options(), apb.E_FhirStructureDefinitionUrl).(string))
}

// typeName is how the table names m.
func typeName(m protoreflect.MessageDescriptor) string {
	switch {
	case isResourceAny(m):
		return "Resource"
	case isPrimitive(m):
		return primName(m)
	}
	return strings.TrimPrefix(string(m.FullName()), corePrefix)
}

func jsonKind(name string) string {
	switch name {
	case "boolean":
		return "bool"
	case "decimal", "integer", "positiveInt", "unsignedInt":
		return "number"
	}
	return "string"
}

func (g *gen) emitPrim(m protoreflect.MessageDescriptor) {
	name := primName(m)
	if g.prims[name] {
		return
	}
	g.prims[name] = true
	re := proto.GetExtension(m.Options(), apb.E_ValueRegex).(string)
	if re == "" {
		re = "-"
	}
	fmt.Fprintf(g.out, "prim\t%s\t%s\t%s\n", name, jsonKind(name), re)
	// The id and extension of a primitive's "_name" object.
	fmt.Fprintf(g.out, "type\t%s\tprimitive\n", name)
	g.emitFields(m)
}

func (g *gen) emitType(m protoreflect.MessageDescriptor) {
	if isPrimitive(m) {
		g.emitPrim(m)
		return
	}
	kind := "complex"
	switch {
	case kindOf(m) == apb.StructureDefinitionKindValue_KIND_RESOURCE:
		kind = "resource"
	case m.Parent() != nil && m.Parent().FullName() != m.ParentFile().Package():
		kind = "backbone"
	}
	fmt.Fprintf(g.out, "type\t%s\t%s\n", typeName(m), kind)
	g.emitFields(m)
}

func (g *gen) emitFields(m protoreflect.MessageDescriptor) {
	fs := m.Fields()
	refDone := false
	for i := 0; i < fs.Len(); i++ {
		f := fs.Get(i)
		if isPrimitive(m) && f.Name() != "id" && f.Name() != "extension" {
			// value, value_us, timezone and the like hold the
			// primitive's value, which JSON writes as the property
			// itself; only id and extension appear in "_name".
			continue
		}
		if m.FullName() == corePrefix+"Reference" && f.ContainingOneof() != nil {
			// The proto splits Reference.reference by target type; in
			// JSON it is one string.
			if !refDone {
				fmt.Fprintf(g.out, "elem\treference\tstring\t-\t-\n")
				refDone = true
			}
			continue
		}
		g.emitField(f)
	}
}

func (g *gen) emitField(f protoreflect.FieldDescriptor) {
	flags := ""
	if f.Cardinality() == protoreflect.Repeated {
		flags += "r"
	}
	if proto.GetExtension(f.Options(), apb.E_ValidationRequirement).(apb.Requirement) == apb.Requirement_REQUIRED_BY_FHIR {
		flags += "q"
	}
	if f.Message() == nil {
		fmt.Fprintf(os.Stderr, "r4gen: %s is not a message field\n", f.FullName())
		os.Exit(1)
	}
	var types []string
	codes := "-"
	if isChoice(f.Message()) {
		flags += "x"
		cs := f.Message().Fields()
		for i := 0; i < cs.Len(); i++ {
			// The suffix is the proto field's JSON name, which differs
			// from the type for profiled types: doseQuantity holds a
			// SimpleQuantity.
			c := cs.Get(i)
			types = append(types, c.JSONName()+"="+g.ref(c.Message()))
		}
	} else {
		types = append(types, g.ref(f.Message()))
		codes = codesOf(f.Message())
	}
	if flags == "" {
		flags = "-"
	}
	fmt.Fprintf(g.out, "elem\t%s\t%s\t%s\t%s\n", f.JSONName(), strings.Join(types, ","), flags, codes)
}

// ref names m for an element line and queues it for its own type line.
func (g *gen) ref(m protoreflect.MessageDescriptor) string {
	g.enqueue(m)
	return typeName(m)
}

// codesOf lists the codes of a specialised code type's enum.
func codesOf(m protoreflect.MessageDescriptor) string {
	if !isPrimitive(m) {
		return "-"
	}
	v := m.Fields().ByName("value")
	if v == nil || v.Enum() == nil {
		return "-"
	}
	var out []string
	vals := v.Enum().Values()
	for i := 0; i < vals.Len(); i++ {
		ev := vals.Get(i)
		if ev.Number() == 0 {
			continue
		}
		code := proto.GetExtension(ev.Options(), apb.E_FhirOriginalCode).(string)
		if code == "" {
			code = strings.ToLower(strings.ReplaceAll(string(ev.Name()), "_", "-"))
		}
		out = append(out, code)
	}
	return strings.Join(out, "|")
}
