-- wrk script: signed webhooks from the file made by bench/signgen
-- (SIGNED env var). Each thread takes every n-th request.
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(os.getenv("SIGNED"), "r"))
  ts = f:read("*l"); a = f:read("*l"); b = f:read("*l"); c = f:read("*l")
  reqs = {}
  local n, i = #threads > 0 and #threads or 2, 0
  for line in f:lines() do
    if i % 2 == tid then table.insert(reqs, line) end
    i = i + 1
  end
  f:close()
  pos = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-Acme-Timestamp"] = ts
end

function request()
  pos = pos + 1
  local line = reqs[pos]
  if line == nil then pos = 1; line = reqs[1] end
  local sig, eid, cid = line:match("^(%S+) (%S+) (%S+)$")
  wrk.headers["X-Acme-Signature"] = sig
  return wrk.format(nil, nil, nil, a .. eid .. b .. cid .. c)
end
