/* SPDX-License-Identifier: MIT */
/*
 * weft.h - structured concurrency for C on Linux io_uring.
 *
 * Include this one header; it pulls in one header per area so that each
 * area can be read on its own. <weft/uring.h> (raw ring access) is
 * separate because it includes <liburing.h>.
 */
#ifndef WEFT_H
#define WEFT_H

#include <weft/base.h>
#include <weft/time.h>
#include <weft/scope.h>
#include <weft/group.h>
#include <weft/task.h>
#include <weft/sync.h>
#include <weft/chan.h>
#include <weft/thread.h>
#include <weft/stream.h>
#include <weft/transport.h>
#include <weft/tls.h>
#include <weft/file.h>
#include <weft/net.h>
#include <weft/process.h>
#include <weft/testing.h>
#include <weft/core.h>
#include <weft/signal.h>

#endif
