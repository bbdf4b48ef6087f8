# deploy.bbclass: adds do_deploy, whose output is published to the host's
# DEPLOY_DIR_IMAGE (<build>/tmp/deploy/images/<machine>/).
#
# A recipe writes its deployable files into ${DEPLOYDIR} inside do_deploy;
# bitzel takes that subtree of the task's output (flag [deploy-dir]) and copies
# it to DEPLOY_DIR_IMAGE on the host when the build asks for it. No task ever
# writes to a shared deploy directory, so deploys never race or leak between
# recipes.

deploy_do_deploy() {
	bbfatal "${PN} inherits deploy but does not define do_deploy"
}
do_deploy[dirs] = "${WORKDIR}"
do_deploy[cleandirs] = "${DEPLOYDIR}"
do_deploy[deploy-dir] = "deploy-${PN}"
do_deploy[doc] = "Writes the files to publish to the deploy directory (DEPLOY_DIR_IMAGE)"
addtask deploy after do_install before do_build

EXPORT_FUNCTIONS do_deploy
