//go:build tools

// The programs build.sh compiles from this module: istiod (pilot-discovery) from the pinned
// istio.io/istio, and the test xDS client next to this file.
package tools

import _ "istio.io/istio/pilot/cmd/pilot-discovery"
