PN = "taskprefix"

addtask first
addtask second after first before third do_fourth
addtask third
addtask fourth
