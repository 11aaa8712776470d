// The sidecars command keeps one simulated sidecar connected to istiod for every running Pod,
// the way kwok simulates nodes: the dev cluster has no Envoy, so without it istiod has no
// proxies, pushes nothing and /debug/syncz stays empty. The dev cluster's `make run` starts it
// next to istiod, and the propagation tests rely on it to see pushes reach (or fail to reach)
// the Pods of a namespace.
//
//	xds-client sidecars --xds 127.0.0.1:15010 --kubeconfig admin.kubeconfig \
//	                    [--namespace NS | --namespace-selector istio-injection=enabled] [--ready-file PATH]
//
// A Pod counts while it has status.podIP, phase Running and no deletionTimestamp. Its sidecar
// is an ADS stream (SotW) with the Pod's identity (name, namespace, IP, labels): it asks for CDS
// and LDS (wildcard), follows the listeners' HTTP connection managers to RDS names and
// re-subscribes RDS whenever that set changes, and answers every push for the life of the Pod,
// reconnecting with capped backoff when istiod goes away.
//
// Annotation contract, read from the Pod (a change restarts its sidecar):
//
//	sidecar.signalbox.dev/xds: ack     (default) ACK every response.
//	sidecar.signalbox.dev/xds: nack    ACK CDS/LDS, NACK every RDS response (error_detail code 3,
//	                                   "simulated sidecar <pod>.<ns> rejected route configuration
//	                                   version <v>", version_info = last accepted, empty at first):
//	                                   istiod records it as the RDS lastError in /debug/syncz.
//	sidecar.signalbox.dev/xds: ignore  ACK CDS/LDS, never answer RDS responses: the RDS nonce
//	                                   istiod sent is never acked, so the proxy shows as stale.
//
// Any other value is treated as ack (with a warning).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"maps"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

const (
	sidecarModeAnnotation = "sidecar.signalbox.dev/xds"
	modeAck               = "ack"
	modeNack              = "nack"
	modeIgnore            = "ignore"

	initialBackoff = 200 * time.Millisecond
	maxBackoff     = 5 * time.Second
)

func sidecarsCommand(args []string) error {
	flags := flag.NewFlagSet("sidecars", flag.ExitOnError)
	address := flags.String("xds", "127.0.0.1:15010", "istiod's plaintext xDS address")
	kubeconfig := flags.String("kubeconfig", "", "kubeconfig of the cluster whose Pods to simulate")
	namespace := flags.String("namespace", "", "simulate the Pods of this namespace only (overrides --namespace-selector)")
	nsSelector := flags.String("namespace-selector", "istio-injection=enabled", "simulate the Pods of namespaces matching this label selector")
	readyFile := flags.String("ready-file", "", "write this file once the informers have synced and the sidecars are started")
	verbose := flags.Bool("verbose", false, "log every response and answer")
	_ = flags.Parse(args)
	if flags.NArg() > 0 {
		return fmt.Errorf("sidecars: unexpected arguments %v", flags.Args())
	}

	sim := &simulator{
		address:   *address,
		verbose:   *verbose,
		namespace: *namespace,
		logger:    log.New(os.Stderr, "xds-client sidecars: ", log.LstdFlags|log.Lmicroseconds),
		sidecars:  map[string]*sidecar{},
	}
	if *namespace == "" {
		selector, err := labels.Parse(*nsSelector)
		if err != nil {
			return fmt.Errorf("--namespace-selector: %w", err)
		}
		sim.selector = selector
	}

	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = *kubeconfig
	restConfig, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	client, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return err
	}
	// One gRPC connection carries every sidecar's stream. Its reconnect backoff is capped like
	// the streams' own (gRPC's default grows to 2 minutes), and the streams wait for it to be
	// ready, so an istiod restart costs each sidecar one disconnect and one connect line.
	conn, err := grpc.NewClient(*address,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           grpcbackoff.Config{BaseDelay: initialBackoff, Multiplier: 2, Jitter: 0.2, MaxDelay: maxBackoff},
			MinConnectTimeout: 5 * time.Second,
		}))
	if err != nil {
		return err
	}
	defer conn.Close()
	sim.conn = conn

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	sim.ctx = ctx

	var factoryOptions []informers.SharedInformerOption
	if *namespace != "" {
		factoryOptions = append(factoryOptions, informers.WithNamespace(*namespace))
	}
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, factoryOptions...)
	podInformer := factory.Core().V1().Pods()
	sim.pods = podInformer.Lister()
	if _, err := podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    sim.podEvent,
		UpdateFunc: func(_, obj any) { sim.podEvent(obj) },
		DeleteFunc: sim.podEvent,
	}); err != nil {
		return err
	}
	if sim.selector != nil {
		nsInformer := factory.Core().V1().Namespaces()
		sim.namespaces = nsInformer.Lister()
		if _, err := nsInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    sim.namespaceEvent,
			UpdateFunc: func(_, obj any) { sim.namespaceEvent(obj) },
			DeleteFunc: sim.namespaceEvent,
		}); err != nil {
			return err
		}
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	for informer, synced := range factory.WaitForCacheSync(ctx.Done()) {
		if !synced && ctx.Err() == nil {
			return fmt.Errorf("informer %v did not sync", informer)
		}
	}
	if ctx.Err() == nil {
		// Handlers have started everything already; one pass over the caches covers any Pod
		// whose Namespace arrived between the two informers' notifications.
		sim.syncAll()
		scope := "namespaces matching " + *nsSelector
		if *namespace != "" {
			scope = "namespace " + *namespace
		}
		sim.logger.Printf("informers synced; simulating %d sidecar(s) in %s against %s", sim.count(), scope, *address)
		if *readyFile != "" {
			if err := os.WriteFile(*readyFile, []byte("ready\n"), 0o644); err != nil {
				sim.shutdown()
				return fmt.Errorf("--ready-file: %w", err)
			}
		}
	}
	<-ctx.Done()
	sim.logger.Printf("signal received; closing %d stream(s)", sim.count())
	sim.shutdown()
	return nil
}

// simulator owns the set of simulated sidecars, keyed by namespace/name.
type simulator struct {
	address    string
	verbose    bool
	namespace  string          // non-empty: only this namespace
	selector   labels.Selector // nil when namespace is set
	logger     *log.Logger
	conn       *grpc.ClientConn
	ctx        context.Context
	pods       listerscorev1.PodLister
	namespaces listerscorev1.NamespaceLister

	mu       sync.Mutex
	sidecars map[string]*sidecar
	wg       sync.WaitGroup
}

// sidecar is one simulated proxy: its identity, its behaviour, and how to stop it.
type sidecar struct {
	identity proxyIdentity
	uid      types.UID
	mode     string
	cancel   context.CancelCauseFunc
}

func (s *sidecar) same(o *sidecar) bool {
	return s.uid == o.uid && s.mode == o.mode && s.identity.ip == o.identity.ip &&
		maps.Equal(s.identity.labels, o.identity.labels)
}

func (sim *simulator) podEvent(obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		return
	}
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return
	}
	sim.syncPod(namespace, name)
}

func (sim *simulator) namespaceEvent(obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		return
	}
	// Pods that are running now (their Namespace was just labelled) ...
	pods, _ := sim.pods.Pods(key).List(labels.Everything())
	for _, pod := range pods {
		sim.syncPod(pod.Namespace, pod.Name)
	}
	// ... and sidecars whose Namespace no longer matches.
	for _, name := range sim.sidecarNames(key) {
		sim.syncPod(key, name)
	}
}

func (sim *simulator) syncAll() {
	pods, _ := sim.pods.List(labels.Everything())
	for _, pod := range pods {
		sim.syncPod(pod.Namespace, pod.Name)
	}
}

func (sim *simulator) sidecarNames(namespace string) []string {
	sim.mu.Lock()
	defer sim.mu.Unlock()
	var names []string
	for _, s := range sim.sidecars {
		if s.identity.namespace == namespace {
			names = append(names, s.identity.pod)
		}
	}
	return names
}

func (sim *simulator) count() int {
	sim.mu.Lock()
	defer sim.mu.Unlock()
	return len(sim.sidecars)
}

func (sim *simulator) namespaceSelected(namespace string) bool {
	if sim.selector == nil {
		return namespace == sim.namespace
	}
	ns, err := sim.namespaces.Get(namespace)
	if err != nil {
		return false
	}
	return ns.DeletionTimestamp == nil && sim.selector.Matches(labels.Set(ns.Labels))
}

// wanted returns the sidecar a Pod should have, or nil when it should have none.
func (sim *simulator) wanted(namespace, name string) *sidecar {
	pod, err := sim.pods.Pods(namespace).Get(name)
	if err != nil { // not found: deleted
		return nil
	}
	if pod.Status.PodIP == "" || pod.Status.Phase != corev1.PodRunning || pod.DeletionTimestamp != nil {
		return nil
	}
	if !sim.namespaceSelected(namespace) {
		return nil
	}
	mode := pod.Annotations[sidecarModeAnnotation]
	switch mode {
	case "":
		mode = modeAck
	case modeAck, modeNack, modeIgnore:
	default:
		sim.logger.Printf("%s.%s: unknown %s=%q, treating as %s", name, namespace, sidecarModeAnnotation, mode, modeAck)
		mode = modeAck
	}
	return &sidecar{
		identity: proxyIdentity{namespace: namespace, pod: name, ip: pod.Status.PodIP, labels: maps.Clone(pod.Labels)},
		uid:      pod.UID,
		mode:     mode,
	}
}

// syncPod starts, restarts or stops the sidecar of one Pod to match the caches.
// The caches are read under the lock: the Pod and Namespace handlers run concurrently, and a
// decision taken on an older read must not be applied after one taken on a newer read.
func (sim *simulator) syncPod(namespace, name string) {
	key := namespace + "/" + name
	sim.mu.Lock()
	defer sim.mu.Unlock()
	if sim.ctx.Err() != nil {
		return
	}
	want := sim.wanted(namespace, name)
	have := sim.sidecars[key]
	if have != nil && want != nil && have.same(want) {
		return
	}
	if have != nil {
		if want == nil {
			have.cancel(fmt.Errorf("pod no longer counts (deleted, not running, no IP, or namespace not selected)"))
		} else {
			have.cancel(fmt.Errorf("pod changed (uid, IP, labels or %s); reconnecting as the new one", sidecarModeAnnotation))
		}
		delete(sim.sidecars, key)
	}
	if want == nil {
		return
	}
	ctx, cancel := context.WithCancelCause(sim.ctx)
	want.cancel = cancel
	sim.sidecars[key] = want
	sim.wg.Add(1)
	go func() {
		defer sim.wg.Done()
		sim.run(ctx, want)
	}()
}

// shutdown stops every sidecar and waits (briefly) for their goroutines.
func (sim *simulator) shutdown() {
	sim.mu.Lock()
	for key, s := range sim.sidecars {
		s.cancel(fmt.Errorf("shutting down"))
		delete(sim.sidecars, key)
	}
	sim.mu.Unlock()
	done := make(chan struct{})
	go func() {
		sim.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		sim.logger.Printf("some streams did not close within 5s; exiting anyway")
	}
}

// run keeps one sidecar's ADS stream up until ctx is cancelled.
func (sim *simulator) run(ctx context.Context, s *sidecar) {
	who := s.identity.pod + "." + s.identity.namespace
	backoff := initialBackoff
	for {
		received, err := sim.session(ctx, s, who)
		if ctx.Err() != nil {
			cause := context.Cause(ctx)
			if sim.ctx.Err() != nil {
				cause = fmt.Errorf("shutting down")
			}
			sim.logger.Printf("%s: disconnected: %v", who, cause)
			return
		}
		if received {
			backoff = initialBackoff
		}
		wait := backoff/2 + rand.N(backoff/2+1) // jitter, so a restarted istiod is not hit all at once
		sim.logger.Printf("%s: disconnected: %v; reconnecting in %v", who, err, wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// session runs one ADS stream; it reports whether any response arrived (to reset the backoff).
func (sim *simulator) session(ctx context.Context, s *sidecar, who string) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	node, err := s.identity.node()
	if err != nil {
		return false, err
	}
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(sim.conn).StreamAggregatedResources(ctx, grpc.WaitForReady(true))
	if err != nil {
		return false, err
	}
	if err := stream.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: clusterType}); err != nil {
		return false, err
	}
	if err := stream.Send(&discovery.DiscoveryRequest{TypeUrl: listenerType}); err != nil {
		return false, err
	}

	var (
		received      bool
		routeNames    []string // the RDS names currently subscribed (sorted)
		subscribedRDS bool
		rdsAccepted   string // version_info of the last RDS response we accepted
		rdsNonce      string // nonce of the last RDS response we ACKed
	)
	for {
		response, err := stream.Recv()
		if err != nil {
			return received, err
		}
		if !received {
			received = true
			sim.logger.Printf("%s: connected to %s as %s (ip %s, mode %s)", who, sim.address, node.Id, s.identity.ip, s.mode)
		}
		if sim.verbose {
			sim.logger.Printf("%s: <- %s version %s nonce %s (%d resources)", who, shortType(response.TypeUrl),
				response.VersionInfo, response.Nonce, len(response.Resources))
		}
		switch response.TypeUrl {
		case listenerType:
			_, names, err := followListeners(response)
			if err != nil {
				return received, err
			}
			if err := sim.send(stream, who, ack(response, nil)); err != nil {
				return received, err
			}
			slices.Sort(names)
			if slices.Equal(names, routeNames) && (subscribedRDS || len(names) == 0) {
				continue
			}
			routeNames = names
			subscribedRDS = true
			// Re-subscribe as Envoy does: the last accepted version and the last ACKed nonce. istiod
			// takes a request carrying the nonce it sent last as an ACK (clearing lastError), so a
			// nack or ignore sidecar, having ACKed nothing, re-subscribes with an empty nonce:
			// istiod then starts the RDS watch afresh and pushes again, to be NACKed or ignored.
			if err := sim.send(stream, who, &discovery.DiscoveryRequest{
				TypeUrl:       routeType,
				VersionInfo:   rdsAccepted,
				ResponseNonce: rdsNonce,
				ResourceNames: routeNames,
			}); err != nil {
				return received, err
			}
		case routeType:
			switch s.mode {
			case modeIgnore:
				continue
			case modeNack:
				message := fmt.Sprintf("simulated sidecar %s rejected route configuration version %s", who, response.VersionInfo)
				sim.logger.Printf("%s: NACK %s nonce %s: %s", who, shortType(response.TypeUrl), response.Nonce, message)
				if err := sim.send(stream, who, &discovery.DiscoveryRequest{
					TypeUrl:       routeType,
					VersionInfo:   rdsAccepted,
					ResponseNonce: response.Nonce,
					ResourceNames: routeNames,
					ErrorDetail:   status.New(codes.InvalidArgument, message).Proto(),
				}); err != nil {
					return received, err
				}
			default:
				rdsAccepted, rdsNonce = response.VersionInfo, response.Nonce
				if err := sim.send(stream, who, ack(response, routeNames)); err != nil {
					return received, err
				}
			}
		default:
			if err := sim.send(stream, who, ack(response, nil)); err != nil {
				return received, err
			}
		}
	}
}

func (sim *simulator) send(stream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient, who string, request *discovery.DiscoveryRequest) error {
	if sim.verbose {
		kind := "ACK"
		switch {
		case request.ErrorDetail != nil:
			kind = "NACK"
		case request.ResponseNonce == "":
			kind = "SUBSCRIBE"
		}
		sim.logger.Printf("%s: -> %s %s version %s nonce %s names %v", who, kind, shortType(request.TypeUrl),
			request.VersionInfo, request.ResponseNonce, request.ResourceNames)
	}
	return stream.Send(request)
}

func shortType(typeURL string) string {
	switch typeURL {
	case clusterType:
		return "CDS"
	case listenerType:
		return "LDS"
	case routeType:
		return "RDS"
	}
	return typeURL
}
