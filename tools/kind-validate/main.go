// Command kind-validate decodes Kind cluster configs strictly into kind's public
// v1alpha4 types (sigs.k8s.io/kind/pkg/apis/config/v1alpha4, pinned in go.mod), so
// an unknown field, a wrong type or a wrong kind/apiVersion is caught without a
// Docker engine, then checks what kind itself would refuse at create time.
//
//	kind-validate <kind-config.yaml>...
//
// One line per file: "OK <file> (<n> nodes, <m> port mappings)" or
// "INVALID <file>: <reason>". Exit 1 when any is invalid, 2 on a usage error.
package main

import (
	"fmt"
	"os"

	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/yaml"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kind-validate <kind-config.yaml>...")
		os.Exit(2)
	}
	invalid := false
	for _, file := range os.Args[1:] {
		data, err := os.ReadFile(file)
		if err != nil {
			fmt.Fprintf(os.Stderr, "kind-validate: %v\n", err)
			os.Exit(2)
		}
		nodes, mappings, err := validate(data)
		if err != nil {
			invalid = true
			fmt.Printf("INVALID %s: %v\n", file, err)
			continue
		}
		fmt.Printf("OK %s (%d nodes, %d port mappings)\n", file, nodes, mappings)
	}
	if invalid {
		os.Exit(1)
	}
}

func validate(data []byte) (int, int, error) {
	var cluster v1alpha4.Cluster
	if err := yaml.UnmarshalStrict(data, &cluster); err != nil {
		return 0, 0, err
	}
	if cluster.Kind != "Cluster" || cluster.APIVersion != "kind.x-k8s.io/v1alpha4" {
		return 0, 0, fmt.Errorf("kind/apiVersion must be Cluster/kind.x-k8s.io/v1alpha4, got %q/%q", cluster.Kind, cluster.APIVersion)
	}
	v1alpha4.SetDefaultsCluster(&cluster)
	controlPlanes, mappings := 0, 0
	hostPorts := map[string]string{}
	for i, node := range cluster.Nodes {
		switch node.Role {
		case v1alpha4.ControlPlaneRole:
			controlPlanes++
		case v1alpha4.WorkerRole:
		default:
			return 0, 0, fmt.Errorf("nodes[%d].role must be control-plane or worker, got %q", i, node.Role)
		}
		for j, m := range node.ExtraPortMappings {
			where := fmt.Sprintf("nodes[%d].extraPortMappings[%d]", i, j)
			if m.ContainerPort < 1 || m.ContainerPort > 65535 {
				return 0, 0, fmt.Errorf("%s.containerPort must be 1..65535, got %d", where, m.ContainerPort)
			}
			if m.HostPort < 1 || m.HostPort > 65535 {
				return 0, 0, fmt.Errorf("%s.hostPort must be 1..65535, got %d", where, m.HostPort)
			}
			switch m.Protocol {
			case v1alpha4.PortMappingProtocolTCP, v1alpha4.PortMappingProtocolUDP, v1alpha4.PortMappingProtocolSCTP:
			default:
				return 0, 0, fmt.Errorf("%s.protocol must be TCP, UDP or SCTP, got %q", where, m.Protocol)
			}
			key := fmt.Sprintf("%s:%d/%s", m.ListenAddress, m.HostPort, m.Protocol)
			if other, taken := hostPorts[key]; taken {
				return 0, 0, fmt.Errorf("%s maps host port %s, which %s maps already", where, key, other)
			}
			hostPorts[key] = where
			mappings++
		}
	}
	if controlPlanes == 0 {
		return 0, 0, fmt.Errorf("nodes: at least one control-plane node is needed")
	}
	return len(cluster.Nodes), mappings, nil
}
