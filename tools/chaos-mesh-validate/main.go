// Command chaos-mesh-validate runs Chaos Mesh's own admission webhook logic
// (Default, then ValidateCreate, from chaos-mesh/api/v1alpha1) on manifest
// files, so a manifest is judged as the cluster's webhook would judge it.
//
//	chaos-mesh-validate <manifest.yaml>...
//
// One line per document: "OK <file> <kind>/<name>" or
// "INVALID <file> <kind>/<name>: <message>". Exit 1 when any is invalid,
// 2 on a usage error (unreadable file, not YAML, unknown kind).
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/yaml"
)

// What the webhook server calls on an incoming object.
type webhookObject interface {
	runtime.Object
	webhook.CustomDefaulter
	webhook.CustomValidator
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: chaos-mesh-validate <manifest.yaml>...")
		os.Exit(2)
	}
	kinds := map[string]func() client.Object{
		v1alpha1.KindStatusCheck: func() client.Object { return &v1alpha1.StatusCheck{} },
	}
	for name, kind := range v1alpha1.AllKindsIncludeScheduleAndWorkflow() {
		kinds[name] = kind.SpawnObject
	}
	invalid := false
	for _, file := range os.Args[1:] {
		bad, err := validateFile(file, kinds)
		if err != nil {
			fmt.Fprintf(os.Stderr, "chaos-mesh-validate: %s: %v\n", file, err)
			os.Exit(2)
		}
		invalid = invalid || bad
	}
	if invalid {
		os.Exit(1)
	}
}

// validateFile prints a verdict per document; err is a usage problem, not an invalid object.
func validateFile(file string, kinds map[string]func() client.Object) (invalid bool, err error) {
	f, err := os.Open(file)
	if err != nil {
		return false, err
	}
	defer f.Close()
	reader := utilyaml.NewYAMLReader(bufio.NewReader(f))
	for i := 1; ; i++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return invalid, nil
		}
		if err != nil {
			return invalid, err
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		var raw any
		if err := yaml.Unmarshal(doc, &raw); err != nil {
			return invalid, fmt.Errorf("document %d is not valid YAML: %w", i, err)
		}
		if raw == nil {
			continue // only comments or a trailing separator
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			return invalid, fmt.Errorf("document %d is not a Kubernetes object: %w", i, err)
		}
		spawn, known := kinds[head.Kind]
		if !known || head.APIVersion != v1alpha1.SchemeGroupVersion.String() {
			return invalid, fmt.Errorf("document %d: unknown kind %q (apiVersion %q); supported, in %s: %s",
				i, head.Kind, head.APIVersion, v1alpha1.SchemeGroupVersion, strings.Join(slices.Sorted(maps.Keys(kinds)), ", "))
		}
		if msg := admit(doc, spawn().(webhookObject)); msg != "" {
			invalid = true
			fmt.Printf("INVALID %s %s/%s: %s\n", file, head.Kind, head.Metadata.Name, msg)
		} else {
			fmt.Printf("OK %s %s/%s\n", file, head.Kind, head.Metadata.Name)
		}
	}
}

// admit returns why the webhook would refuse the object, or "" when it admits it.
func admit(doc []byte, obj webhookObject) string {
	// Strict, unlike the webhook: the API server rejects unknown fields at apply, so they are errors here too.
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return err.Error()
	}
	ctx := context.Background()
	if err := obj.Default(ctx, obj); err != nil {
		return err.Error()
	}
	warnings, err := obj.ValidateCreate(ctx, obj)
	for _, w := range warnings {
		fmt.Fprintf(os.Stderr, "warning: %s\n", w)
	}
	if err != nil {
		return err.Error()
	}
	return ""
}
