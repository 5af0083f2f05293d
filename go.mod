module github.com/repe-gw/repe-gw

go 1.26
