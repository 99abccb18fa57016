/* SPDX-License-Identifier: MIT */
/*
 * weft/uring.h - raw io_uring access from a task (not included by weft.h:
 * it pulls in <liburing.h>).
 *
 * Any one-shot operation liburing can prepare runs from a task with the
 * same cancellation and deadline guarantees as weft's own calls: a
 * cancelled operation gets IORING_OP_ASYNC_CANCEL and the await returns
 * only after its terminal completion, so the kernel is done with the
 * caller's buffers. Between wf_sqe() and the await the task must
 * not block. One SQE per await: IOSQE_IO_LINK chains and multishot
 * operations are not supported here.
 */
#ifndef WEFT_URING_H
#define WEFT_URING_H

#include <liburing.h>
#include <weft/base.h>

#ifdef __cplusplus
extern "C" {
#endif

/* An SQE of the current loop's ring; NULL outside a loop. Prepare it with
 * an io_uring_prep_* call, which writes every field (it is not zeroed). */
struct io_uring_sqe *weft_uring_sqe(void);

/* Submit-and-wait: the CQE's res, or -ECANCELED. */
int weft_uring_await(struct io_uring_sqe *sqe);

/*
 * The same, with a linked timeout: the kernel itself ends the operation at
 * deadline (CLOCK_MONOTONIC), and the call returns -ETIMEDOUT.
 */
int weft_uring_await_until(struct io_uring_sqe *sqe, weft_time deadline);

/* Extra: the IORING_SETUP_* flags the current loop's ring was made with. */
unsigned weft_uring_setup_flags(void);

/* Extra: whether the current loop's kernel supports an opcode. */
bool weft_uring_has_op(int opcode);

#ifdef __cplusplus
}
#endif
#endif
