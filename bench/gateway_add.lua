-- gateway_add.lua: wrk's requests for bench/gateway.py -- one session per
-- wrk thread (each thread runs one connection), adds of 1 unit cycling over
-- the products, like `zcart-bench -w ops` does through libzcart.
local products = {"apple", "banana", "cherry", "grape", "lemon", "mango", "orange", "pear"}
local counter = 0
local session, n = nil, 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end

function init(args)
  math.randomseed(os.time() * 1000 + id)
  local t = {}
  for i = 1, 16 do t[i] = string.format("%02x", math.random(0, 255)) end
  session = table.concat(t)
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("ZCART_GATEWAY_TOKEN")
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  n = n + 1
  local p = products[(n % #products) + 1]
  return wrk.format("POST", "/v1/sessions/" .. session .. "/items", nil,
                    '{"product": "' .. p .. '", "qty": 1}')
end

function done(summary, latency, requests)
  io.write(string.format('{"requests": %d, "errors_status": %d, "duration_us": %d, ' ..
                         '"p50_us": %d, "p99_us": %d}\n',
                         summary.requests, summary.errors.status, summary.duration,
                         latency:percentile(50), latency:percentile(99)))
end
