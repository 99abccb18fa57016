-- SPDX-License-Identifier: MIT
-- perf/wrk-pace.lua - wrk with gaps between requests: each connection
-- waits 5 ms after each response before its next request (wrk's delay()
-- hook), about 200 requests/s per connection. perf/rate-bench compares
-- weft-load --rate's p50 with this, at the same request rate: both
-- clients then leave the CPUs idle between requests, as an open loop
-- below saturation does. wrk measures from each send.
function delay()
   return 5
end
