-- wrk script: authenticated GET of the URL given on the command line.
function init(args)
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
end
