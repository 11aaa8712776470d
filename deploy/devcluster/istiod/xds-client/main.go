// xds-client connects to istiod's plaintext xDS port as a Pod's sidecar would, over a real
// ADS stream, ACKs what it receives, and prints what that proxy was given.
//
//	xds-client routes  --xds 127.0.0.1:15010 --namespace tutorial --pod customer-abc --ip 10.244.0.5 \
//	                   --labels app=customer,version=v1
//
// prints one JSON document {"listeners": [...names], "routeConfigurations": [...]} with the
// RouteConfigurations named by the listeners' HTTP connection managers (followed from LDS),
// in Envoy's own JSON form (every typed filter config resolved).
//
//	xds-client sidecars --xds 127.0.0.1:15010 --kubeconfig admin.kubeconfig [--namespace NS]
//
// keeps one simulated sidecar connected per running Pod (see sidecars.go).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	// Registers every Envoy extension type istiod may put into an Any, so protojson can
	// print route configurations whole (without it, Format returns an empty string).
	_ "istio.io/istio/pkg/config/xds"
)

const (
	clusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	listenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	routeType    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	istioVersion = "1.31.0"
)

// proxyIdentity is what a sidecar tells istiod about itself.
type proxyIdentity struct {
	namespace string
	pod       string
	ip        string
	labels    map[string]string
}

func (p proxyIdentity) node() (*core.Node, error) {
	labels := map[string]any{}
	for k, v := range p.labels {
		labels[k] = v
	}
	metadata, err := structpb.NewStruct(map[string]any{
		"NAMESPACE":         p.namespace,
		"ISTIO_VERSION":     istioVersion,
		"CLUSTER_ID":        "Kubernetes",
		"INSTANCE_IPS":      p.ip,
		"LABELS":            labels,
		"NAME":              p.pod,
		"INTERCEPTION_MODE": "REDIRECT",
	})
	if err != nil {
		return nil, err
	}
	return &core.Node{
		Id:       fmt.Sprintf("sidecar~%s~%s.%s~%s.svc.cluster.local", p.ip, p.pod, p.namespace, p.namespace),
		Metadata: metadata,
	}, nil
}

func parseLabels(text string) map[string]string {
	labels := map[string]string{}
	for _, pair := range strings.Split(text, ",") {
		if k, v, ok := strings.Cut(strings.TrimSpace(pair), "="); ok {
			labels[k] = v
		}
	}
	return labels
}

func dial(address string) (*grpc.ClientConn, error) {
	return grpc.NewClient(address, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: xds-client routes|sidecars [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "routes":
		err = routesCommand(os.Args[2:])
	case "sidecars":
		err = sidecarsCommand(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q; want routes or sidecars", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "xds-client:", err)
		os.Exit(1)
	}
}

func routesCommand(args []string) error {
	flags := flag.NewFlagSet("routes", flag.ExitOnError)
	address := flags.String("xds", "127.0.0.1:15010", "istiod's plaintext xDS address")
	namespace := flags.String("namespace", "", "the Pod's namespace")
	pod := flags.String("pod", "", "the Pod's name")
	ip := flags.String("ip", "", "the Pod's IP")
	labels := flags.String("labels", "", "the Pod's labels, k=v,k=v")
	timeout := flags.Duration("timeout", 10*time.Second, "give up after this long")
	_ = flags.Parse(args)
	if *namespace == "" || *pod == "" || *ip == "" {
		return fmt.Errorf("--namespace, --pod and --ip are required")
	}
	identity := proxyIdentity{namespace: *namespace, pod: *pod, ip: *ip, labels: parseLabels(*labels)}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	listeners, routes, err := fetchRoutes(ctx, *address, identity)
	if err != nil {
		return err
	}
	return printRoutes(listeners, routes)
}

// fetchRoutes opens an ADS stream, takes CDS and LDS (ACKing both), then asks for every
// RouteConfiguration the listeners name and returns them once received (and ACKed).
func fetchRoutes(ctx context.Context, address string, identity proxyIdentity) ([]string, []*route.RouteConfiguration, error) {
	conn, err := dial(address)
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close()
	node, err := identity.node()
	if err != nil {
		return nil, nil, err
	}
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, typeURL := range []string{clusterType, listenerType} {
		if err := stream.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: typeURL}); err != nil {
			return nil, nil, err
		}
	}
	var listenerNames []string
	var routeNames []string
	for {
		response, err := stream.Recv()
		if err != nil {
			return nil, nil, fmt.Errorf("ADS stream: %w", err)
		}
		switch response.TypeUrl {
		case listenerType:
			listenerNames, routeNames, err = followListeners(response)
			if err != nil {
				return nil, nil, err
			}
			if err := stream.Send(ack(response, nil)); err != nil {
				return nil, nil, err
			}
			if err := stream.Send(&discovery.DiscoveryRequest{TypeUrl: routeType, ResourceNames: routeNames}); err != nil {
				return nil, nil, err
			}
		case routeType:
			routes, err := decodeRoutes(response)
			if err != nil {
				return nil, nil, err
			}
			if err := stream.Send(ack(response, routeNames)); err != nil {
				return nil, nil, err
			}
			return listenerNames, routes, nil
		default:
			if err := stream.Send(ack(response, nil)); err != nil {
				return nil, nil, err
			}
		}
	}
}

// ack accepts a response: the same type, its version and nonce.
func ack(response *discovery.DiscoveryResponse, names []string) *discovery.DiscoveryRequest {
	return &discovery.DiscoveryRequest{
		TypeUrl:       response.TypeUrl,
		VersionInfo:   response.VersionInfo,
		ResponseNonce: response.Nonce,
		ResourceNames: names,
	}
}

// followListeners returns the listeners' names and the RDS names of their HTTP connection
// managers, as Envoy would follow them.
func followListeners(response *discovery.DiscoveryResponse) ([]string, []string, error) {
	var names, routes []string
	seen := map[string]bool{}
	for _, resource := range response.Resources {
		var l listener.Listener
		if err := resource.UnmarshalTo(&l); err != nil {
			return nil, nil, fmt.Errorf("listener: %w", err)
		}
		names = append(names, l.Name)
		for _, chain := range l.FilterChains {
			for _, filter := range chain.Filters {
				typed := filter.GetTypedConfig()
				if typed == nil {
					continue
				}
				var manager hcm.HttpConnectionManager
				if typed.UnmarshalTo(&manager) != nil {
					continue
				}
				if rds := manager.GetRds(); rds != nil && !seen[rds.RouteConfigName] {
					seen[rds.RouteConfigName] = true
					routes = append(routes, rds.RouteConfigName)
				}
			}
		}
	}
	return names, routes, nil
}

func decodeRoutes(response *discovery.DiscoveryResponse) ([]*route.RouteConfiguration, error) {
	routes := make([]*route.RouteConfiguration, 0, len(response.Resources))
	for _, resource := range response.Resources {
		var config route.RouteConfiguration
		if err := resource.UnmarshalTo(&config); err != nil {
			return nil, fmt.Errorf("route configuration: %w", err)
		}
		routes = append(routes, &config)
	}
	return routes, nil
}

func printRoutes(listeners []string, routes []*route.RouteConfiguration) error {
	printed := make([]json.RawMessage, 0, len(routes))
	for _, config := range routes {
		text, err := protojson.Marshal(config)
		if err != nil {
			return fmt.Errorf("printing route configuration %s: %w", config.Name, err)
		}
		printed = append(printed, text)
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"listeners":           listeners,
		"routeConfigurations": printed,
	})
}
