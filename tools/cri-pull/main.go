// Command cri-pull pulls one image through a container runtime's CRI ImageService, as the
// kubelet does, and prints the image reference the runtime reports. The end-to-end tests use it
// to show that containerd's CRI plugin, configured with the README's config_path snippet, pulls
// through the hosts.toml files the node agent writes.
//
//	cri-pull -endpoint /run/containerd/containerd.sock quay.io/org/image:tag
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func main() {
	endpoint := flag.String("endpoint", "", "the runtime's CRI socket (a path)")
	timeout := flag.Duration("timeout", 2*time.Minute, "give up after this long")
	flag.Parse()
	if *endpoint == "" || flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: cri-pull -endpoint <socket> <image>")
		os.Exit(2)
	}
	conn, err := grpc.NewClient("unix://"+*endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(os.Stderr, "cri-pull:", err)
		os.Exit(1)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	resp, err := runtimeapi.NewImageServiceClient(conn).PullImage(ctx, &runtimeapi.PullImageRequest{
		Image: &runtimeapi.ImageSpec{Image: flag.Arg(0)},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "cri-pull:", err)
		os.Exit(1)
	}
	fmt.Println(resp.ImageRef)
}
