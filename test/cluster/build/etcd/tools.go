//go:build tools

// Package tools pins the etcd program test/cluster/build/kubernetes.sh builds.
package tools

import _ "go.etcd.io/etcd/server/v3"
